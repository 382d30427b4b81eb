"""OpusPlcDecoder: libopus through ctypes, bit-identical to aiortc's decoder on received packets, and
real codec concealment (PLC, in-band FEC) of the packets that never arrived."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from webrtc_peers import FRAME, speech_clip, tone

from samos.bench.webrtc_load import encode_opus
from samos.monitor.sources import opus_plc
from samos.monitor.sources.opus_plc import CONCEALED, OpusPlcDecoder

pytestmark = pytest.mark.skipif(not opus_plc.available(), reason="no libopus to load")


def decode_all(decoder, packets: list[bytes], lose: set[int] = frozenset()) -> list:  # noqa: ANN001
    frames = []
    for i, p in enumerate(packets):
        if i not in lose:
            frames += decoder.decode(JitterFrame(data=p, timestamp=i * FRAME))
    return frames


def left(frames: list) -> np.ndarray:
    """Left channel of decoded packed s16 stereo frames, float."""
    return np.concatenate([f.to_ndarray().reshape(-1, 2)[:, 0] for f in frames]).astype(np.float64)


def test_received_packets_decode_exactly_as_aiortc_decodes_them() -> None:
    packets = encode_opus(speech_clip(2.0))
    ours, theirs = decode_all(OpusPlcDecoder(), packets), decode_all(OpusDecoder(), packets)
    assert len(ours) == len(theirs) == len(packets)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.pts, a.sample_rate, a.format.name, a.layout.name) == (b.pts, b.sample_rate, "s16", "stereo")
        np.testing.assert_array_equal(a.to_ndarray(), b.to_ndarray())
        assert a.opaque is None


def test_lost_packets_are_concealed_in_place_by_the_codec() -> None:
    """Two lost 20 ms packets of a steady tone: the timeline has no hole, the two stand-in frames are
    marked, and they continue the tone (libopus PLC) instead of going silent."""
    audio = tone(1.0, 440.0, 0.3)
    packets = encode_opus(audio)
    frames = decode_all(OpusPlcDecoder(), packets, lose={20, 21})
    assert [f.pts for f in frames] == [i * FRAME for i in range(len(packets))]
    assert [f.pts for f in frames if f.opaque == CONCEALED] == [20 * FRAME, 21 * FRAME]
    got = left(frames) / 32768
    sent = left(decode_all(OpusDecoder(), packets)) / 32768
    hole = slice(20 * FRAME, 22 * FRAME)
    rms = float(np.sqrt(np.mean(got[hole] ** 2)))
    assert rms > 0.5 * float(np.sqrt(np.mean(sent[hole] ** 2)))  # not silence
    first = slice(20 * FRAME, 21 * FRAME)
    assert np.corrcoef(got[first], sent[first])[0, 1] > 0.8  # the tone goes on in phase


def test_a_long_gap_is_concealed_up_to_the_limit_and_stays_a_gap_after_it() -> None:
    packets = encode_opus(speech_clip(2.0))
    dec = OpusPlcDecoder(max_conceal_seconds=0.1)
    frames = decode_all(dec, packets, lose=set(range(10, 30)))  # 400 ms lost
    concealed = [f for f in frames if f.opaque == CONCEALED]
    assert sum(f.samples for f in concealed) == dec.concealed_samples == 4_800  # 100 ms
    assert concealed[0].pts == 10 * FRAME
    after = next(f for f in frames if f.pts >= 11 * FRAME and f.opaque is None)
    assert after.pts == 30 * FRAME  # the next received packet keeps its place: 300 ms stay missing


def test_in_band_fec_restores_a_lost_packet_better_than_concealment() -> None:
    """With the sender's in-band FEC (as browsers send), the packet after a loss carries a coarse copy
    of the lost one: the decoder uses it, and the lost 20 ms come back closer to what was sent."""
    audio = speech_clip(3.0)
    lose = {k for k in range(20, 140, 10)}

    def error(packets: list[bytes]) -> float:
        ref = left(decode_all(OpusDecoder(), packets))
        got = left(decode_all(OpusPlcDecoder(), packets, lose))
        mask = np.zeros(len(ref), bool)
        for k in lose:
            mask[k * FRAME : (k + 1) * FRAME] = True
        return float(np.sum((got[mask] - ref[mask]) ** 2) / np.sum(ref[mask] ** 2))

    plain = encode_opus(audio)
    with_fec = encode_opus(audio, fec=True)
    assert error(with_fec) < 0.5 * error(plain)


def blocks_of(frames: list, received: set[int]) -> list[tuple[int, int, np.ndarray]]:
    """Per-frame ``decode`` output grouped as ``decode_blocks`` must group it: runs contiguous in
    time with concealment (a frame whose ``pts`` is not in ``received``) only at their start, as
    ``(pts, concealed samples, mono)``."""
    from samos.monitor.sources.webrtc import frame_to_mono

    runs: list[list] = []
    for f in frames:
        concealed = f.pts not in received
        run = runs[-1] if runs else None
        if run is None or f.pts != run[0] + sum(len(m) for m in run[2]) or (concealed and run[1] < run[3]):
            runs.append([f.pts, 0, [], 0])
            run = runs[-1]
        run[1] += f.samples if concealed else 0
        run[2].append(frame_to_mono(f))
        run[3] += f.samples
    return [(pts, concealed, np.concatenate(parts)) for pts, concealed, parts, _ in runs]


@pytest.mark.parametrize("per_call", [1, 3, 200])
def test_decode_blocks_gives_the_samples_of_decode_in_runs(per_call: int) -> None:
    """Packets decoded many at a time come out as the per-packet path's down-mixed samples, bit for
    bit, cut where time jumps (a gap longer than concealment covers) or concealment begins, however
    the packets are grouped into calls; a corrupt packet is skipped and reported."""
    packets = encode_opus(speech_clip(3.0))
    lose = {20, 21, 40} | set(range(60, 90))  # two short losses, one 600 ms gap (500 ms concealed)
    bad = 100
    items = [
        JitterFrame(data=b"\xff\xff" + b"\x00" * 8 if i == bad else p, timestamp=i * FRAME)
        for i, p in enumerate(packets)
        if i not in lose
    ]
    reference = OpusPlcDecoder()
    frames = []
    for item in items:
        try:
            frames += reference.decode(item)
        except opus_plc.OpusDecodeError:
            pass
    dec = OpusPlcDecoder()
    blocks, errors = [], []
    for k in range(0, len(items), per_call):
        got, failed = dec.decode_blocks(items[k : k + per_call])
        blocks += got
        errors += failed
    assert len(errors) == 1
    bad_at = next(k for k, item in enumerate(items) if item.timestamp == bad * FRAME)
    want = blocks_of(frames, {item.timestamp for k, item in enumerate(items) if k != bad_at})
    if per_call < len(items):  # runs cut by the call boundaries: join what is contiguous
        joined: list = []
        for b in blocks:
            last = joined[-1] if joined else None
            if last and b.pts == last[0] + len(last[2]) and not b.concealed:
                joined[-1] = (last[0], last[1], np.concatenate([last[2], b.mono]))
            else:
                joined.append((b.pts, b.concealed, b.mono))
        got_runs = joined
    else:
        got_runs = [(b.pts, b.concealed, b.mono) for b in blocks]
    assert [(p, c, len(m)) for p, c, m in got_runs] == [(p, c, len(m)) for p, c, m in want]
    for (_, _, a), (_, _, b) in zip(got_runs, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert dec.concealed_samples == reference.concealed_samples > 0
    assert all(b.mono.dtype == np.float32 and b.sample_rate == 48_000 for b in blocks)


def test_a_mono_decoder_downmixes_as_the_stereo_path_does_within_a_rounding_step() -> None:
    """``channels=1`` (the batched hand-off's): libopus down-mixes the stereo stream itself; the
    result is the stereo path's channel mean to within 2 steps of 16 bits, and the same length,
    timing and concealment."""
    from samos.monitor.sources.webrtc import frame_to_mono

    packets = encode_opus(speech_clip(2.0))
    items = [JitterFrame(data=p, timestamp=i * FRAME) for i, p in enumerate(packets) if i not in {30, 31}]
    stereo, mono = OpusPlcDecoder(), OpusPlcDecoder(channels=1)
    want = np.concatenate([frame_to_mono(f) for item in items for f in stereo.decode(item)])
    blocks, errors = mono.decode_blocks(items)
    got = np.concatenate([b.mono for b in blocks])
    assert not errors and len(got) == len(want) == len(packets) * FRAME
    assert [(b.pts, b.concealed) for b in blocks] == [(0, 0), (30 * FRAME, 2 * FRAME)]
    diff = np.abs(got - want)
    hole = slice(30 * FRAME, 32 * FRAME)  # concealment itself: libopus's PLC, mono or stereo
    assert diff[: hole.start].max() <= 2 / 32768

    def snr_db(part: slice) -> float:
        return float(10 * np.log10(np.sum(want[part] ** 2) / np.sum((got[part] - want[part]) ** 2)))

    # after a loss the two decoders' states differ for a while (concealment is not the same sum)
    assert snr_db(slice(hole.stop, None)) > 40
    assert 0 < diff.max()  # not the same computation: a real down-mix in the codec
    frames = OpusPlcDecoder(channels=1).decode(items[0])
    assert frames[0].layout.name == "mono" and frames[0].samples == FRAME
    with pytest.raises(ValueError, match="channels"):
        OpusPlcDecoder(channels=3)


def test_decoders_keep_the_gil_and_decode_as_a_gil_releasing_library_does() -> None:
    """The decoders' libopus keeps the GIL around its calls (``PyDLL``: no hand-over of the GIL per
    20 ms packet, docs/RELIABILITY.md); opened the other way, the same packets decode to the same
    samples."""
    lib = opus_plc.load_libopus()
    assert isinstance(lib, ctypes.PyDLL)
    path = opus_plc.libopus_path()
    assert path is not None
    releasing = opus_plc.open_libopus(path, keep_gil=False)
    assert not isinstance(releasing, ctypes.PyDLL)
    packets = encode_opus(speech_clip(1.0))
    ours, other = OpusPlcDecoder(channels=1), OpusPlcDecoder(channels=1)
    other._lib = releasing
    (a,), _ = ours.decode_blocks(JitterFrame(data=p, timestamp=i * FRAME) for i, p in enumerate(packets))
    (b,), _ = other.decode_blocks(JitterFrame(data=p, timestamp=i * FRAME) for i, p in enumerate(packets))
    np.testing.assert_array_equal(a.mono, b.mono)
    assert a.samples == len(packets) * FRAME
