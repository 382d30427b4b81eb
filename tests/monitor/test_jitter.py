"""AudioJitterBuffer against aiortc's audio JitterBuffer on the same lossy, reordered packet streams."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from samos.monitor.sources.jitter import AudioJitterBuffer, install

FRAME = 960


def packets(n: int, first_seq: int = 65_530) -> list[RtpPacket]:
    """``n`` consecutive audio packets (sequence numbers wrap past 65535), payload = their index."""
    out = []
    for i in range(n):
        p = RtpPacket(payload_type=111, sequence_number=(first_seq + i) % 65_536, timestamp=i * FRAME)
        p._data = i.to_bytes(4, "big")  # type: ignore[attr-defined]
        out.append(p)
    return out


def released(buffer, stream: list[RtpPacket]) -> list[int]:  # noqa: ANN001
    out = []
    for p in stream:
        _, frame = buffer.add(p)
        if frame is not None:
            out.append(int.from_bytes(frame.data, "big"))
    return out


def test_in_order_packets_come_out_at_once_and_in_order() -> None:
    buf = AudioJitterBuffer()
    assert released(buf, packets(100)) == list(range(100))  # no prefetch delay, across the wrap


def test_a_reordered_packet_is_waited_for() -> None:
    stream = packets(20)
    stream[5], stream[6] = stream[6], stream[5]
    assert released(AudioJitterBuffer(), stream) == list(range(20))[:19]  # one frame behind after it


@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_lost_packets_are_skipped_and_every_received_one_is_released(rate: float) -> None:
    """aiortc's buffer discards frames that arrived intact around each hole; ours releases every one
    (but the last few, still waiting when the stream stops) in order."""
    stream = packets(2_000)
    lost = np.random.default_rng(0).random(len(stream)) < rate
    arrived = [p for p, gone in zip(stream, lost, strict=True) if not gone]
    indices = [i for i, gone in enumerate(lost) if not gone]
    ours = AudioJitterBuffer()
    out = released(ours, arrived)
    assert out == indices[: len(out)] and len(out) >= len(indices) - ours.depth
    assert ours.skipped == int(lost[: out[-1]].sum()) and ours.late == 0
    theirs = released(JitterBuffer(capacity=16, prefetch=4), arrived)
    assert len(theirs) < len(out) - rate * 1_000  # what the stock buffer throws away


def test_a_packet_later_than_its_skipped_hole_is_dropped() -> None:
    stream = packets(12)
    late = stream.pop(2)
    buf = AudioJitterBuffer(depth=4)
    out = released(buf, stream[:6])  # seq 0,1,3,4,5,6: the hole at 2 is skipped once 6 is there
    assert out == [0, 1, 3]
    assert released(buf, [late]) == [] and buf.late == 1 and buf.skipped == 1


def test_install_replaces_only_aiortcs_audio_buffer() -> None:
    class Receiver:
        pass

    r = Receiver()
    r._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=4)  # type: ignore[attr-defined]
    assert install(r) and isinstance(r._RTCRtpReceiver__jitter_buffer, AudioJitterBuffer)  # type: ignore[attr-defined]
    video = Receiver()
    video._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=512, is_video=True)  # type: ignore[attr-defined]
    assert not install(video)
