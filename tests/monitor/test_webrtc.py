"""WebRTCSource with two real aiortc peers in one process (offer/answer exchanged directly)."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Iterator
from typing import cast

import av
import numpy as np
import pytest
from aiortc import RTCSessionDescription
from webrtc_peers import FRAME, RATE, ArrayTrack, drop_rtp_packets, offer_for, tone

from samos.monitor.source import AudioChunk, Source, SourceEnded
from samos.monitor.sources import handoff, opus_plc
from samos.monitor.sources.webrtc import (
    OfferError,
    WebRTCOptions,
    WebRTCSource,
    _Timeline,
    accept_offer,
    frame_to_mono,
)

pytestmark = pytest.mark.timeout(40)
FAST = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.0, close_timeout=3.0)


@pytest.fixture(autouse=True)
def stock_aiortc_path() -> Iterator[None]:
    """These tests drive ``accept_offer`` on stock aiortc (its worker and jitter buffer, no
    concealment) unless they say otherwise; the choice is process-wide and a monitor started by an
    earlier test (its HTTP app) would otherwise leave samos's path on."""
    handoff.use("aiortc")
    yield
    handoff.use("aiortc")


async def no_tasks_left(grace: float = 2.0) -> list[asyncio.Task]:
    """Tasks other than the current one still alive after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while True:
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)


async def connect(track, options: WebRTCOptions = FAST, name: str = "s1"):
    """Sender pc with ``track`` -> accept_offer -> answer applied; returns (sender pc, source)."""
    sender = await offer_for(track)
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", name, options)
    await sender.setRemoteDescription(answer)
    return sender, source


async def drain(source: WebRTCSource, limit: float = 20.0) -> tuple[list[AudioChunk], str]:
    """All chunks until SourceEnded; returns (chunks, the SourceEnded message)."""
    chunks: list[AudioChunk] = []
    deadline = time.monotonic() + limit
    while True:
        try:
            chunks.append(await asyncio.wait_for(source.recv(), timeout=deadline - time.monotonic()))
        except SourceEnded as e:
            return chunks, str(e)


# ------------------------------------------------------------------------------------------ pure parts
def test_frame_to_mono_downmixes_interleaved_s16_stereo() -> None:
    left = np.arange(FRAME, dtype=np.int16) * 10
    right = np.full(FRAME, -2000, dtype=np.int16)
    packed = np.stack([left, right], axis=1).reshape(1, -1)  # L R L R ...
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
    mono = frame_to_mono(frame)
    assert mono.shape == (FRAME,) and mono.dtype == np.float32
    np.testing.assert_allclose(mono, (left.astype(np.float64) - 2000) / 2 / 32768, atol=1e-6)


def test_frame_to_mono_planar_float_and_mono() -> None:
    planes = np.stack([np.full(FRAME, 0.5, np.float32), np.full(FRAME, -0.1, np.float32)])
    frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout="stereo")
    np.testing.assert_allclose(frame_to_mono(frame), 0.2, atol=1e-6)
    single = av.AudioFrame.from_ndarray(np.full((1, FRAME), 16384, np.int16), format="s16", layout="mono")
    np.testing.assert_allclose(frame_to_mono(single), 0.5, atol=1e-6)


def test_timeline_counts_missing_samples() -> None:
    tl = _Timeline(RATE)
    base = fractions.Fraction(1, RATE)
    assert tl.gap(1000, base, FRAME) == 0  # the first frame sets the origin
    assert tl.gap(1000 + FRAME, base, FRAME) == 0
    assert tl.gap(1000 + 5 * FRAME, base, FRAME) == 3 * FRAME  # frames 2, 3, 4 missing
    assert tl.gap(1000 + 4 * FRAME, base, FRAME) == 0  # late/reordered: never negative
    assert tl.gap(None, None, FRAME) == 0
    # another time base (e.g. 90 kHz) is converted to 48 kHz samples
    tl90 = _Timeline(RATE)
    assert tl90.gap(0, fractions.Fraction(1, 90_000), FRAME) == 0
    assert tl90.gap(3600, fractions.Fraction(1, 90_000), FRAME) == 960  # 40 ms later: one frame missing


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="inactivity_timeout"):
        WebRTCOptions(inactivity_timeout=0)


# ------------------------------------------------------------------------------------------ bad offers
@pytest.mark.parametrize(
    ("sdp", "sdp_type", "message"),
    [
        ("hello", "offer", "malformed SDP"),
        ("", "offer", "malformed SDP"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "offer", "no media"),
        ("v=0\r\nm=audio x\r\n", "offer", "malformed SDP"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF zz\r\n", "offer", "malformed SDP"),
    ],
)
async def test_malformed_offers_are_refused(sdp: str, sdp_type: str, message: str) -> None:
    with pytest.raises(OfferError, match=message):
        await accept_offer(sdp, sdp_type, "bad")
    assert not await no_tasks_left(0.5)


async def test_an_answer_is_not_an_offer() -> None:
    sender = await offer_for(ArrayTrack(tone(0.2)))
    with pytest.raises(OfferError, match="type 'offer'"):
        await accept_offer(sender.localDescription.sdp, "answer", "bad")
    await sender.close()


async def test_offer_without_audio_is_refused() -> None:
    video_only = await offer_for(None, video=True)
    with pytest.raises(OfferError, match="sends no audio"):
        await accept_offer(video_only.localDescription.sdp, "offer", "bad")
    receive_only = await offer_for(None)
    receive_only.addTransceiver("audio", direction="recvonly")
    await receive_only.setLocalDescription(await receive_only.createOffer())
    with pytest.raises(OfferError, match="sends no audio"):
        await accept_offer(receive_only.localDescription.sdp, "offer", "bad")
    for pc in (video_only, receive_only):
        await pc.close()
    assert not await no_tasks_left()


async def test_offer_without_opus_is_refused() -> None:
    sender = await offer_for(ArrayTrack(tone(0.2)))
    lines = sender.localDescription.sdp.split("\r\n")
    opus_pt = next(ln.split()[0].split(":")[1] for ln in lines if "opus/48000" in ln)
    kept = [ln for ln in lines if f":{opus_pt} " not in ln]
    kept = [
        (" ".join(p for p in ln.split(" ") if p != opus_pt) if ln.startswith("m=audio") else ln)
        for ln in kept
    ]
    with pytest.raises(OfferError, match="Opus"):
        await accept_offer("\r\n".join(kept), "offer", "bad")
    await sender.close()


async def test_offer_missing_ice_credentials_is_refused_and_cleaned_up() -> None:
    sender = await offer_for(ArrayTrack(tone(0.2)))
    sdp = "\r\n".join(ln for ln in sender.localDescription.sdp.split("\r\n") if not ln.startswith("a=ice-"))
    with pytest.raises(OfferError, match="cannot apply the offer: ICE"):
        await accept_offer(sdp, "offer", "bad")
    await sender.close()
    assert not await no_tasks_left()


# ------------------------------------------------------------------------------------------ real media
async def test_two_peers_deliver_the_tone_at_48k() -> None:
    audio = tone(1.5, freq=440.0, amplitude=0.3)
    track = ArrayTrack(audio)
    sender, source = await connect(track)
    assert isinstance(cast(object, source), Source)  # the protocol, checked at run time
    assert (source.name, source.rate, source.kind) == ("s1", 48_000, "webrtc")
    chunks, reason = await drain(source)
    assert "no audio for 1 s" in reason  # the sender's media ended; the track itself never does
    assert all(  # whole 20 ms frames (several at once only when the reader fell behind)
        c.rate == RATE and c.samples.ndim == 1 and c.frames % FRAME == 0 and c.samples.dtype == np.float32
        for c in chunks
    )
    frames = sum(c.frames for c in chunks) // FRAME
    assert frames >= track.sent - 5  # aiortc's jitter buffer keeps the last 4 (prefetch) frames
    assert sum(c.dropped for c in chunks) == 0
    received = np.concatenate([c.samples for c in chunks])[FRAME * 10 :]  # skip the codec's start-up
    spectrum = np.abs(np.fft.rfft(received * np.hanning(len(received))))
    peak_hz = np.argmax(spectrum) * RATE / len(received)
    assert abs(peak_hz - 440.0) < 3.0
    rms_db = 20 * np.log10(np.sqrt(np.mean(received**2)))
    assert abs(rms_db - 20 * np.log10(0.3 / np.sqrt(2))) < 1.5
    assert [c.t_capture for c in chunks] == sorted(c.t_capture for c in chunks)
    await source.close()
    await source.close()  # idempotent
    assert source.connection_state == "closed"
    await sender.close()
    assert not await no_tasks_left()


async def test_timestamp_gaps_are_reported_as_dropped_samples() -> None:
    track = ArrayTrack(tone(1.0), skip={10: 5 * FRAME, 30: 2 * FRAME})
    sender, source = await connect(track)
    chunks, _ = await drain(source)
    starts = np.cumsum([0] + [c.frames for c in chunks[:-1]]) // FRAME  # frame index of each chunk
    drops = [(int(k), c.dropped) for k, c in zip(starts, chunks, strict=True) if c.dropped]
    assert [d for _, d in drops] == [5 * FRAME, 2 * FRAME]
    assert drops[0][0] in (11, 12)  # on the frame after the gap (the encoder may shift by one frame)
    assert source.stats.lost_samples == 7 * FRAME
    assert await source.packets_lost() == 0  # the RTP sequence had no gap: only the timestamps jumped
    await source.close()
    await sender.close()


def align(reference: np.ndarray, chunks: list[AudioChunk]) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild the received timeline (``dropped`` samples as zeros before each chunk) and return it
    with the reference shifted by the codec delay (found on the first 200 ms), equal lengths."""
    timeline = np.concatenate([np.concatenate([np.zeros(c.dropped, np.float32), c.samples]) for c in chunks])
    head = timeline[: 10 * FRAME]
    delay = max(
        range(2 * FRAME), key=lambda d: float(np.dot(head[d : d + 5 * FRAME], reference[: 5 * FRAME]))
    )
    received = timeline[delay:]
    n = min(len(received), len(reference))
    return received[:n], reference[:n]


async def test_lost_rtp_packets_are_reported_as_dropped_samples() -> None:
    audio = tone(1.5, freq=440.0)
    sender = await offer_for(ArrayTrack(audio))
    lost = drop_rtp_packets(sender, {20, 21, 40})  # two packets in a row, then one
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "lossy", FAST)
    await sender.setRemoteDescription(answer)
    chunks, _ = await drain(source)
    assert len(lost) == 3
    assert await source.packets_lost() == 3  # the receiver's RTP sequence-gap count
    drops = [c.dropped for c in chunks if c.dropped]
    # aiortc's jitter buffer also discards the frames it held back (prefetch) before a hole, so more
    # audio is missing than the lost packets carried: dropped counts what is really missing.
    assert len(drops) == 2 and drops[0] >= 2 * FRAME and drops[1] >= FRAME
    assert all(d % FRAME == 0 for d in drops)
    assert source.stats.lost_samples == sum(drops)
    # Exactness: with the gaps filled in, the tone after the losses is still in phase with what was
    # sent (a count off by one frame would shift a 440 Hz tone by 0.8 of a period).
    received, reference = align(audio, chunks)
    tail = slice(len(received) - 10 * FRAME, len(received))
    corr = np.corrcoef(received[tail], reference[tail])[0, 1]
    assert corr > 0.95, corr
    await source.close()
    await sender.close()


async def test_with_the_batched_hand_off_lost_packets_are_concealed_in_place() -> None:
    """The same losses through the batched hand-off: its Opus decoder conceals them, so nothing is
    missing from the timeline (no ``dropped``), the stand-in audio is marked ``concealed`` at the start
    of its chunk, and the tone goes on through the holes."""
    if not opus_plc.available():
        pytest.skip("no libopus to load")
    handoff.use("batched")
    audio = tone(1.5, freq=440.0)
    sender = await offer_for(ArrayTrack(audio))
    lost = drop_rtp_packets(sender, {20, 21, 40})
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "plc", FAST)
    await sender.setRemoteDescription(answer)
    chunks, _ = await drain(source)
    assert len(lost) == 3
    assert not any(c.dropped for c in chunks) and source.stats.lost_samples == 0
    concealed = [c.concealed for c in chunks if c.concealed]
    assert sum(concealed) == source.stats.concealed_samples >= 3 * FRAME
    assert all(c % FRAME == 0 for c in concealed)
    received, reference = align(audio, chunks)
    corr = np.corrcoef(received[-10 * FRAME :], reference[-10 * FRAME :])[0, 1]
    assert corr > 0.95, corr
    await source.close()
    await sender.close()


async def test_peer_close_ends_the_stream_promptly() -> None:
    options = WebRTCOptions(inactivity_timeout=30.0, close_timeout=3.0)
    sender, source = await connect(ArrayTrack(tone(30.0)), options)
    first = await asyncio.wait_for(source.recv(), 10.0)
    assert first.frames >= FRAME and first.frames % FRAME == 0
    await sender.close()
    t0 = time.monotonic()
    _, reason = await drain(source, limit=10.0)
    assert time.monotonic() - t0 < 5.0  # far below the 30 s inactivity timeout
    assert "peer" in reason
    await source.close()
    assert not await no_tasks_left()


async def test_a_slow_consumer_loses_the_oldest_audio_and_is_told() -> None:
    options = WebRTCOptions(inactivity_timeout=1.0, buffer_seconds=0.1)  # 5 frames
    sender, source = await connect(ArrayTrack(tone(1.0)), options)
    await asyncio.wait_for(source.recv(), 10.0)
    await asyncio.sleep(0.6)  # ~30 frames arrive, 5 fit
    chunks, _ = await drain(source)
    dropped = sum(c.dropped for c in chunks)
    assert dropped > 10 * FRAME
    assert dropped == source.stats.overflow_samples
    assert chunks[0].dropped > 0  # reported on the oldest chunk that survived
    await source.close()
    await sender.close()


async def test_a_reader_that_fell_behind_gets_the_backlog_at_once_and_gaps_stay_in_place() -> None:
    track = ArrayTrack(tone(1.0, freq=440.0), skip={30: 3 * FRAME})
    sender, source = await connect(track)
    first = await asyncio.wait_for(source.recv(), 10.0)
    await asyncio.sleep(0.4)  # ~20 frames queue up meanwhile
    chunks, _ = await drain(source)
    assert max(c.frames for c in chunks) >= 5 * FRAME  # joined: far fewer, longer chunks
    assert len(chunks) < track.sent - 10
    # the 3-frame gap is still reported before the first frame that followed it, at the same place
    # in the timeline as with one frame per chunk
    starts = (first.frames + np.cumsum([0] + [c.frames for c in chunks[:-1]])) // FRAME
    drops = [(int(k), c.dropped) for k, c in zip(starts, chunks, strict=True) if c.dropped]
    assert [d for _, d in drops] == [3 * FRAME]
    assert drops[0][0] in (31, 32)
    await source.close()
    await sender.close()


async def test_recv_hands_out_batches_and_never_holds_a_frame_longer_than_batch_seconds() -> None:
    options = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.0, batch_seconds=0.1)
    sender, source = await connect(ArrayTrack(tone(2.0)), options)
    chunks: list[AudioChunk] = []
    waited: list[float] = []
    while True:
        try:
            chunk = await asyncio.wait_for(source.recv(), 10.0)
        except SourceEnded:
            break
        chunks.append(chunk)
        # t_capture is when the chunk's last frame arrived; its first came (frames - 1) x 20 ms earlier
        waited.append(time.monotonic() - chunk.t_capture + (chunk.frames / FRAME - 1) * 0.02)
    frames = [c.frames // FRAME for c in chunks]
    assert sum(frames) >= 95  # 2 s of 20 ms frames (the last one may be cut)
    assert np.median(frames) >= 4  # ~5 frames (100 ms) per chunk, not 1
    assert max(waited) < 0.1 + 0.15, waited  # batch_seconds plus scheduling slack on a loaded CI box
    await source.close()
    await sender.close()


async def test_batch_seconds_zero_hands_out_each_frame_as_it_arrives() -> None:
    options = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.0, batch_seconds=0.0)
    sender, source = await connect(ArrayTrack(tone(1.0)), options)
    chunks, _ = await drain(source)
    assert sum(c.frames for c in chunks) >= 45 * FRAME
    assert np.median([c.frames for c in chunks]) == FRAME
    with pytest.raises(ValueError, match="batch_seconds"):
        WebRTCOptions(batch_seconds=2.0)
    await source.close()
    await sender.close()


async def test_video_is_answered_inactive_and_audio_still_flows() -> None:
    sender = await offer_for(ArrayTrack(tone(0.6)), video=True)
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "av", FAST)
    sections = answer.sdp.split("m=")[1:]
    video = next(s for s in sections if s.startswith("video"))
    audio = next(s for s in sections if s.startswith("audio"))
    assert "a=inactive" in video and "a=recvonly" in audio
    await sender.setRemoteDescription(answer)
    chunks, _ = await drain(source)
    assert sum(c.frames for c in chunks) > 10 * FRAME
    await source.close()
    await sender.close()
    assert not await no_tasks_left()


async def test_no_media_at_all_ends_after_the_connect_timeout() -> None:
    sender = await offer_for(ArrayTrack(tone(1.0)))
    options = WebRTCOptions(connect_timeout=0.5, close_timeout=2.0)
    source, _ = await accept_offer(sender.localDescription.sdp, "offer", "mute", options)
    # the sender never applies the answer: no connection, no frame
    _, reason = await drain(source)
    assert "no audio for 0.5 s" in reason
    await source.close()
    await sender.close()
    assert not await no_tasks_left()


async def test_cancelling_a_reader_is_not_swallowed() -> None:
    sender, source = await connect(ArrayTrack(tone(5.0), end="hang"))

    async def read_forever() -> None:
        while True:
            await source.recv()

    reader = asyncio.create_task(read_forever(), name="reader")
    await asyncio.sleep(0.3)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert reader.cancelled()
    closer = asyncio.create_task(source.close(), name="closer")
    await asyncio.wait_for(closer, 5.0)
    with pytest.raises(SourceEnded, match="closed by the monitor"):
        await source.recv()
    await sender.close()
    assert not await no_tasks_left()


async def test_answer_object_round_trips() -> None:
    sender = await offer_for(ArrayTrack(tone(0.2)))
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "x", FAST)
    assert isinstance(answer, RTCSessionDescription) and answer.type == "answer"
    assert "opus/48000/2" in answer.sdp and "PCMU" not in answer.sdp
    await source.close()
    await sender.close()
