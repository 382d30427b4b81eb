"""The batched hand-off of decoded audio: one decoding thread for every receiver, same audio, fewer
wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from aiortc import rtcrtpreceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from webrtc_peers import FRAME, RATE, ArrayTrack, offer_for, speech_clip

from samos.bench.webrtc_load import encode_opus
from samos.monitor.source import SourceEnded
from samos.monitor.sources import handoff, opus_plc, srtp_inline
from samos.monitor.sources.webrtc import WebRTCOptions, accept_offer, frame_to_mono

pytestmark = pytest.mark.timeout(60)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


@pytest.fixture(autouse=True)
def restore_handoff() -> Iterator[None]:
    yield
    handoff.use("aiortc")


def opus_frames(seconds: float) -> list[JitterFrame]:
    """Real Opus packets of speech as aiortc's jitter buffer hands them to the decoder."""
    packets = encode_opus(speech_clip(seconds))
    return [JitterFrame(data=p, timestamp=i * FRAME) for i, p in enumerate(packets)]


@contextlib.contextmanager
def counted_wakeups(loop: asyncio.AbstractEventLoop) -> Iterator[list[int]]:
    """Count the loop's ``call_soon_threadsafe`` calls (wake-ups from other threads): ``[n]``."""
    count = [0]
    real_call = loop.call_soon_threadsafe

    def counting_call(*args, **kwargs):  # noqa: ANN002, ANN003
        count[0] += 1
        return real_call(*args, **kwargs)

    loop.call_soon_threadsafe = counting_call  # type: ignore[method-assign]
    try:
        yield count
    finally:
        del loop.call_soon_threadsafe


async def run_worker(worker, items: list) -> tuple[list, int, bool]:
    """Feed ``items`` to ``worker`` in its own thread; returns (what reached the track's queue, how many
    loop callbacks delivered it, decode_error)."""
    loop = asyncio.get_running_loop()
    input_q: queue.Queue = queue.Queue()
    for item in items:
        input_q.put(item)
    output_q: asyncio.Queue = asyncio.Queue()
    error = threading.Event()  # (the batched worker registers with the decoding thread and returns)
    with counted_wakeups(loop) as wakeups:
        thread = threading.Thread(target=worker, args=(loop, input_q, output_q, error), daemon=True)
        thread.start()
        out = []
        while (item := await asyncio.wait_for(output_q.get(), 10.0)) is not None:
            out.append(item)
        await asyncio.to_thread(thread.join, 5.0)
    return out, wakeups[0], error.is_set()


async def test_batched_worker_decodes_exactly_what_aiortc_decodes_with_fewer_wakeups() -> None:
    frames = opus_frames(2.0)
    items = [(OPUS, f) for f in frames] + [None]  # all queued at once: a loop that fell behind
    ours, ours_wakeups, ours_error = await run_worker(handoff.batched_decoder_worker, items)
    # aiortc's worker uses run_coroutine_threadsafe: one call_soon_threadsafe per frame
    theirs, theirs_wakeups, theirs_error = await run_worker(handoff.AIORTC_WORKER, items)
    assert not ours_error and not theirs_error
    assert len(theirs) == len(frames)
    # ours: the same audio as mono blocks of contiguous audio (here: one), down-mixed by libopus
    # (a mono decoder) rather than as the mean of the two decoded channels: within a rounding step
    assert all(isinstance(b, opus_plc.PcmBlock) and b.sample_rate == RATE for b in ours)
    assert [b.pts for b in ours] == [0] and not any(b.concealed for b in ours)
    np.testing.assert_allclose(
        np.concatenate([b.mono for b in ours]),
        np.concatenate([frame_to_mono(f) for f in theirs]),
        rtol=0,
        atol=2 / 32768,
    )
    assert theirs_wakeups >= len(frames)
    assert ours_wakeups <= 2  # everything was queued: one hand-off (plus the end marker's, at most)


async def test_a_frame_that_fails_to_decode_is_skipped_and_flagged() -> None:
    good = opus_frames(0.2)
    # a code-3 Opus packet that claims 48 frames of 120 ms: libopus refuses it
    bad = JitterFrame(data=b"\xff\xff" + b"\x00" * 8, timestamp=len(good) * FRAME)
    later = [JitterFrame(data=f.data, timestamp=(len(good) + 1 + i) * FRAME) for i, f in enumerate(good)]
    items = [(OPUS, f) for f in good] + [(OPUS, bad)] + [(OPUS, f) for f in later] + [None]
    out, _, error = await run_worker(handoff.batched_decoder_worker, items)
    assert error
    # the decoder kept its state: everything after it decoded, and the 20 ms the bad packet held
    # are concealed (the batched worker's Opus decoder conceals lost audio) at the start of a block
    assert sum(b.samples for b in out) == (2 * len(good) + 1) * FRAME
    assert [(b.pts, b.concealed) for b in out if b.concealed] == [(len(good) * FRAME, FRAME)]


def test_use_swaps_the_worker_for_new_receivers_and_back() -> None:
    assert handoff.use("batched") == "batched" == handoff.current()
    assert rtcrtpreceiver.decoder_worker is handoff.batched_decoder_worker
    assert handoff.use("aiortc") == "aiortc" == handoff.current()
    assert rtcrtpreceiver.decoder_worker is handoff.AIORTC_WORKER
    with pytest.raises(ValueError, match="batched"):
        handoff.use("fast")  # type: ignore[arg-type]


def test_use_sets_the_batch_of_the_inline_receivers_and_the_decoding_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(srtp_inline, "DEFER_SECONDS", srtp_inline.DEFER_SECONDS)
    monkeypatch.setattr(handoff._DECODING, "poll_seconds", handoff._DECODING.poll_seconds)
    assert srtp_inline.DEFER_SECONDS == handoff.POLL_SECONDS == handoff._DECODING.poll_seconds == 0.1
    handoff.use("batched", batch_seconds=0.25)
    assert srtp_inline.DEFER_SECONDS == handoff._DECODING.poll_seconds == 0.25
    handoff.use("batched")  # None: kept
    assert srtp_inline.DEFER_SECONDS == 0.25
    for bad in (0.0, 0.005, 1.5, float("nan")):
        with pytest.raises(ValueError, match="webrtc batch"):
            handoff.use("batched", batch_seconds=bad)
    assert srtp_inline.DEFER_SECONDS == 0.25
    handoff.use("aiortc")


def test_an_aiortc_with_another_worker_signature_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def other_worker(loop, input_q, output_q, decode_error, extra):  # noqa: ANN001 - a future aiortc's
        raise AssertionError("never started here")

    monkeypatch.setattr(handoff, "AIORTC_WORKER", other_worker)
    assert not handoff.compatible()
    assert handoff.use("batched") == "aiortc"
    assert rtcrtpreceiver.decoder_worker is other_worker
    assert "keeping aiortc's hand-off" in caplog.text
    assert tuple(inspect.signature(handoff.batched_decoder_worker).parameters) == handoff._EXPECTED


@pytest.mark.parametrize("mode", ["batched", "aiortc"])
async def test_a_real_peer_connection_through_either_handoff(mode: handoff.Handoff) -> None:
    handoff.use(mode)
    audio = speech_clip(1.5)
    sender = await offer_for(ArrayTrack(audio))
    options = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.0, close_timeout=3.0)
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", mode, options)
    await sender.setRemoteDescription(answer)
    received = []
    while True:
        try:
            received.append((await asyncio.wait_for(source.recv(), 10.0)).samples)
        except SourceEnded:
            break
    got = np.concatenate(received)
    assert len(got) >= len(audio) - 10 * FRAME  # frames sent before DTLS is up are lost either way
    # Opus is lossy, delays by a few ms and the first frames may be lost: align, then compare
    a, b = audio[:RATE], got[:RATE]
    xc = np.fft.irfft(np.fft.rfft(b, 2 * RATE) * np.conj(np.fft.rfft(a, 2 * RATE)))
    shift = int(np.argmax(xc))  # got[i] ~ audio[i - shift] (mod 2 s: negative shifts wrap)
    shift = shift - 2 * RATE if shift > RATE else shift
    x, y = (got[shift:], audio) if shift >= 0 else (got, audio[-shift:])
    n = min(len(x), len(y))
    assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.9
    await source.close()
    await sender.close()


async def test_one_decoding_thread_serves_every_receiver_and_stops_when_they_end() -> None:
    """Packets trickling in on several receivers at once (as from live peers): every track gets its
    audio in order, each poll hands everything over in one loop call for all of them, no thread is
    started per receiver, and the decoding thread ends with the last track."""
    loop = asyncio.get_running_loop()
    frames = opus_frames(0.6)
    pool = handoff.DecodingThread(poll_seconds=0.05)
    tracks = [(queue.Queue(), asyncio.Queue(), threading.Event()) for _ in range(4)]
    for input_q, output_q, error in tracks:
        pool.add(handoff._Receiver(loop, input_q, output_q, error))
    threads = threading.active_count()
    with counted_wakeups(loop) as calls:
        for f in frames:  # in real time: 20 ms apart
            for input_q, _, _ in tracks:
                input_q.put((OPUS, f))
            await asyncio.sleep(0.02)
        for input_q, _, _ in tracks:
            input_q.put(None)
        got = []
        for _, output_q, _ in tracks:
            items = []
            while (item := await asyncio.wait_for(output_q.get(), 10.0)) is not None:
                items.append(item)
            got.append(np.concatenate([b.mono for b in items]))
    for mono in got[1:]:
        np.testing.assert_array_equal(mono, got[0])
    assert len(got[0]) == len(frames) * FRAME
    assert calls[0] <= 0.6 / 0.05 + 4  # one per poll for all four tracks, not one per track or packet
    assert threading.active_count() == threads
    for _ in range(50):
        if pool._thread is None:
            break
        await asyncio.sleep(0.02)
    assert pool._thread is None


async def test_a_wake_takes_the_queued_packets_without_waiting_for_the_poll() -> None:
    loop = asyncio.get_running_loop()
    frames = opus_frames(0.1)
    pool = handoff.DecodingThread(poll_seconds=30.0)  # a poll that never comes within the test
    input_q, output_q = queue.Queue(), asyncio.Queue()
    pool.add(handoff._Receiver(loop, input_q, output_q, threading.Event()))
    await asyncio.sleep(0.1)  # the thread's first take (nothing queued) is done: it waits now
    input_q.put((OPUS, frames[0]))
    await asyncio.sleep(0.2)
    assert output_q.empty()  # queued, not taken: the next poll is 30 s away
    pool.wake()
    block = await asyncio.wait_for(output_q.get(), 2.0)
    assert block.samples == FRAME
    input_q.put(None)
    pool.wake()
    assert await asyncio.wait_for(output_q.get(), 2.0) is None
    pool.wake()  # with no track left, its next take ends the thread
    for _ in range(50):
        if pool._thread is None:
            break
        await asyncio.sleep(0.02)
    assert pool._thread is None


async def test_receivers_of_the_batched_path_get_a_simple_queue_for_their_packets() -> None:
    handoff.use("batched")
    sender = await offer_for(ArrayTrack(speech_clip(0.5)))
    options = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.0, close_timeout=3.0)
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "q", options)
    receiver = source._receiver
    assert isinstance(getattr(receiver, handoff._DECODER_QUEUE), queue.SimpleQueue)
    await sender.setRemoteDescription(answer)
    got = await asyncio.wait_for(source.recv(), 10.0)
    assert got.frames > 0
    await source.close()
    await sender.close()
    assert not handoff.install(receiver)  # already replaced: left as it is


async def test_a_receiver_whose_decoding_raises_ends_alone() -> None:
    """An unexpected error while decoding one track ends that track (its end marker, decode_error)
    and leaves the decoding thread serving the others."""
    loop = asyncio.get_running_loop()
    frames = opus_frames(0.2)
    pool = handoff.DecodingThread(poll_seconds=0.02)
    broken, healthy = (
        (queue.Queue(), asyncio.Queue(), threading.Event()),
        (queue.Queue(), asyncio.Queue(), threading.Event()),
    )
    pool.add(handoff._Receiver(loop, *broken))
    pool.add(handoff._Receiver(loop, *healthy))
    broken[0].put(("not a codec", frames[0]))  # no .name: take() raises AttributeError
    assert await asyncio.wait_for(broken[1].get(), 5.0) is None and broken[2].is_set()
    for f in frames:
        healthy[0].put((OPUS, f))
    healthy[0].put(None)
    got = []
    while (item := await asyncio.wait_for(healthy[1].get(), 5.0)) is not None:
        got.append(item)
    assert sum(b.samples for b in got) == len(frames) * FRAME and not healthy[2].is_set()
