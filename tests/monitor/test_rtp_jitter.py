"""The RTP jitter buffer: order restored within the delay, holes given up and counted, late and
duplicate packets refused, wrap-around of sequence numbers and timestamps, sequence restarts."""

from __future__ import annotations

import pytest

from samos.monitor.sources.rtp_jitter import MAX_DROPOUT, JitterBuffer, extend


def seqs(released: list) -> list[int]:
    return [r.packet.seq & 0xFFFF for r in released]


def test_extend_unwraps_both_ways() -> None:
    assert extend(2, 65534, 16) == 65538
    assert extend(65534, 65538, 16) == 65534
    assert extend(5, None, 16) == 5
    assert extend(10, 2**32 - 10, 32) == 2**32 + 10


def test_in_order_packets_pass_at_once() -> None:
    jb = JitterBuffer(max_delay=0.1)
    out = []
    for i in range(5):
        assert jb.push(100 + i, 160 * i, b"x", arrival=0.02 * i) == "queued"
        out += jb.pop(now=0.02 * i)
    assert seqs(out) == [100, 101, 102, 103, 104]
    assert all(r.lost == 0 and not r.resync for r in out)
    assert len(jb) == 0 and jb.deadline() is None


def test_reordered_packets_come_out_in_order_without_waiting_for_the_deadline() -> None:
    jb = JitterBuffer(max_delay=0.1)
    out = []
    for s in (0, 2, 1, 4, 3, 5):
        jb.push(s, 160 * s, b"x", arrival=0.0)
        out += jb.pop(now=0.0)
    assert seqs(out) == [0, 1, 2, 3, 4, 5]
    assert all(r.lost == 0 for r in out)


def test_a_hole_is_given_up_after_max_delay_and_counted() -> None:
    jb = JitterBuffer(max_delay=0.06)
    jb.push(0, 0, b"a", 0.0)
    assert seqs(jb.pop(0.0)) == [0]
    jb.push(3, 480, b"d", 0.06)  # 1 and 2 are missing
    jb.push(4, 640, b"e", 0.08)
    assert jb.pop(0.10) == [] and jb.deadline() == pytest.approx(0.12)
    out = jb.pop(0.12)
    assert seqs(out) == [3, 4] and [r.lost for r in out] == [2, 0]
    assert jb.push(1, 160, b"b", 0.13) == "late"  # its place was given up


def test_duplicates_and_late_packets_are_refused() -> None:
    jb = JitterBuffer(max_delay=0.05)
    jb.push(10, 0, b"a", 0.0)
    jb.push(12, 320, b"c", 0.0)
    assert jb.push(12, 320, b"c", 0.0) == "duplicate"
    assert seqs(jb.pop(0.0)) == [10]
    assert jb.push(10, 0, b"a", 0.01) == "duplicate"  # released already


def test_a_packet_reordered_ahead_of_the_first_still_starts_the_stream() -> None:
    jb = JitterBuffer(max_delay=0.05)
    jb.push(6, 960, b"b", 0.0)
    jb.push(5, 800, b"a", 0.001)  # nothing released yet (no pop): 5 starts the stream
    assert seqs(jb.pop(0.002)) == [5, 6]


def test_wraparound_keeps_order_and_extends_numbers() -> None:
    jb = JitterBuffer(max_delay=0.05)
    out = []
    for s in (65534, 0, 65535, 1):
        jb.push(s, (s * 160) & 0xFFFFFFFF, b"x", 0.0)
        out += jb.pop(0.0)
    assert [r.packet.seq for r in out] == [65534, 65535, 65536, 65537]
    assert all(r.lost == 0 for r in out)


def test_more_than_max_packets_held_gives_up_the_hole_at_once() -> None:
    jb = JitterBuffer(max_delay=10.0, max_packets=4)
    jb.push(0, 0, b"", 0.0)
    jb.pop(0.0)
    for s in range(2, 8):  # 1 is missing; 6 packets wait behind it
        jb.push(s, 160 * s, b"", 0.0)
    out = jb.pop(0.0)
    assert seqs(out) == [2, 3, 4, 5, 6, 7] and out[0].lost == 1


def test_a_single_far_jump_is_refused_two_in_a_row_restart_the_sequence() -> None:
    jb = JitterBuffer(max_delay=0.05)
    for s in range(3):
        jb.push(s, 160 * s, b"", 0.0)
    assert seqs(jb.pop(0.0)) == [0, 1, 2]
    far = 2 + MAX_DROPOUT + 10
    assert jb.push(far, 999_999, b"", 0.0) == "jump"  # one stray packet: refused
    assert jb.push(3, 480, b"", 0.0) == "queued"  # the stream goes on
    assert seqs(jb.pop(0.0)) == [3]
    assert jb.push(40_000, 5, b"", 0.1) == "jump"
    assert jb.push(40_001, 165, b"", 0.12) == "restart"
    out = jb.pop(0.12)
    assert seqs(out) == [40_001] and out[0].resync and out[0].lost == 0
    jb.push(40_002, 325, b"", 0.14)
    assert [(r.packet.seq & 0xFFFF, r.lost) for r in jb.pop(0.14)] == [(40_002, 0)]


def test_drain_gives_everything_in_order() -> None:
    jb = JitterBuffer(max_delay=5.0)
    for s in (1, 4, 3):
        jb.push(s, 0, b"", 0.0)
    out = jb.pop(0.0) + jb.drain()
    assert seqs(out) == [1, 3, 4] and [r.lost for r in out] == [0, 1, 0]


def test_fillers_keep_their_place_and_are_not_released_or_lost() -> None:
    jb = JitterBuffer(max_delay=0.05)
    jb.push(0, 0, b"a", 0.0)
    jb.push(1, 160, b"", 0.0, filler=True)  # a telephone-event in the audio's sequence
    jb.push(3, 480, b"d", 0.0)  # 2 is lost
    out = jb.pop(0.0) + jb.pop(0.06)
    assert seqs(out) == [0, 3] and [r.lost for r in out] == [0, 1]
