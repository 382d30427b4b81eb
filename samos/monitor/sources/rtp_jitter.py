"""A receive jitter buffer for RTP: packets back in sequence order within a bounded delay. Pure, I/O-free.

RTP over UDP arrives reordered, duplicated, late or not at all. :class:`JitterBuffer` holds packets by
their (extended) sequence number and releases them strictly in order:

- the next expected packet is released as soon as it is there;
- a hole is given up on when the oldest packet held behind it has waited ``max_delay`` seconds (by
  arrival time), or when more than ``max_packets`` are held; the released packet then says how many
  packets were skipped before it (``lost``);
- a packet whose place was given up already is ``late``, one held or released already is a
  ``duplicate``: both are refused and counted by the caller;
- a packet more than ``MAX_DROPOUT`` sequence numbers ahead or ``MAX_MISORDER`` behind is refused
  (``jump``); when the next packet continues it, the sender restarted its sequence: what is held is
  flushed and the order restarts at that packet, released with ``resync=True`` (the probation of
  RFC 3550 A.1, with its limits).

16-bit sequence numbers and 32-bit timestamps are *extended* (unwrapped) relative to the last value
seen, so a stream may run for any time. Arrival times are whatever clock the caller passes (seconds);
:class:`samos.monitor.sources.rtp.RtpSource` passes ``time.monotonic()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

MAX_DROPOUT = 3000
"""A sequence number this far ahead of the expected one is a restart, not loss (RFC 3550 A.1)."""
MAX_MISORDER = 100
"""Before anything is released, a packet up to this far behind the first one still starts the stream."""

Verdict = Literal["queued", "late", "duplicate", "jump", "restart"]


def extend(value: int, reference: int | None, bits: int) -> int:
    """The unwrapped value nearest to ``reference`` whose low ``bits`` bits are ``value``.

    ``extend(2, 65534, 16) == 65538``; ``extend(65534, 65538, 16) == 65534``. ``reference`` None:
    ``value`` itself.
    """
    if reference is None:
        return value
    size = 1 << bits
    half = size >> 1
    delta = (value - reference + half) % size - half
    return reference + delta


@dataclass(frozen=True)
class Packet:
    """One RTP packet as the jitter buffer sees it: ``seq`` and ``timestamp`` extended (unwrapped),
    ``payload`` the RTP payload, ``arrival`` seconds on the caller's clock."""

    seq: int
    timestamp: int
    payload: bytes
    arrival: float
    filler: bool = False
    """A packet of the stream that carries no audio (e.g. a telephone-event): it keeps its place in
    the sequence, so it is not counted as lost, and is never released."""


@dataclass(frozen=True)
class Released:
    """A packet handed out in order. ``lost``: packets given up on just before it (sequence numbers
    skipped); ``resync``: the first packet after a restart of the sequence (its timestamp starts a
    new timeline; ``lost`` is 0)."""

    packet: Packet
    lost: int = 0
    resync: bool = False


class JitterBuffer:
    """Sequence-number reordering for one RTP stream (one SSRC). See the module doc.

    ``max_delay``: seconds a hole may hold back later packets (the latency added on reordering or
    loss; none otherwise). ``max_packets``: packets held at most; beyond that the hole is given up at
    once (a reader that fell behind, or a flood).
    """

    def __init__(self, max_delay: float = 0.06, max_packets: int = 512) -> None:
        if not max_delay >= 0:
            raise ValueError(f"max_delay must be >= 0 s, got {max_delay!r}")
        if max_packets < 1:
            raise ValueError(f"max_packets must be >= 1, got {max_packets}")
        self.max_delay = max_delay
        self.max_packets = max_packets
        self._held: dict[int, Packet] = {}
        self._next: int | None = None  # extended seq expected next
        self._last_seq: int | None = None  # reference for extending 16-bit seqs
        self._last_ts: int | None = None  # reference for extending 32-bit timestamps
        self._released_any = False
        self._restart_at: int | None = None  # the packet that starts a new sequence
        self._probe: int | None = None  # the sequence number that would confirm a jump
        self._skipped: set[int] = set()  # recently given-up sequence numbers (to tell late from duplicate)

    def __len__(self) -> int:
        return len(self._held)

    def push(self, seq16: int, ts32: int, payload: bytes, arrival: float, filler: bool = False) -> Verdict:
        """Add a packet (16-bit sequence number, 32-bit timestamp as on the wire).

        Returns ``queued``; ``late`` or ``duplicate`` (refused); ``jump`` (refused: a sequence number
        far from the expected one, kept in mind: when the next packet continues it, the stream
        restarts there); ``restart`` (queued, and the stream restarts at it).
        """
        seq = extend(seq16 & 0xFFFF, self._last_seq, 16)
        ts = extend(ts32 & 0xFFFFFFFF, self._last_ts, 32)
        verdict: Verdict = "queued"
        if self._next is not None and (seq - self._next > MAX_DROPOUT or self._next - seq > MAX_MISORDER):
            if seq != self._probe:  # one packet far off is refused; two in a row are a new sequence
                self._probe = seq + 1
                return "jump"
            self._restart_at, verdict = seq, "restart"
            self._last_seq = self._last_ts = None  # the new sequence is its own reference
        elif self._next is not None and seq < self._next:
            if self._released_any:  # its place was given up (late) or it was released (duplicate)
                if seq in self._skipped:
                    self._skipped.discard(seq)
                    return "late"
                return "duplicate"
            self._next = seq  # reordered ahead of the first packet: it starts the stream
        if seq in self._held:
            return "duplicate"
        self._probe = None
        if self._last_seq is None or seq > self._last_seq:
            self._last_seq, self._last_ts = seq, ts
        if self._next is None:
            self._next = seq
        self._held[seq] = Packet(seq, ts, payload, arrival, filler)
        return verdict

    def pop(self, now: float) -> list[Released]:
        """The packets that may be released at ``now`` (in sequence order)."""
        out: list[Released] = []
        self._release(out, now, force=False)
        return out

    def drain(self) -> list[Released]:
        """Everything held, in order, holes given up (end of stream or a switch of SSRC)."""
        out: list[Released] = []
        self._release(out, float("inf"), force=True)
        return out

    def deadline(self) -> float | None:
        """When :meth:`pop` will give up the current hole (caller's clock), or None if nothing waits."""
        if not self._held or self._next in self._held:
            return None
        return min(p.arrival for p in self._held.values()) + self.max_delay

    def _release(self, out: list[Released], now: float, force: bool) -> None:
        restart = self._restart_at
        if restart is not None:
            # Everything before the restart goes out first (holes given up), then the new sequence.
            before = {s: p for s, p in self._held.items() if s != restart}
            self._held = {restart: self._held[restart]} if restart in self._held else {}
            self._take(before, out, lambda: True)
            self._next, self._restart_at = restart, None
            first = self._held.pop(restart, None)
            if first is not None:
                self._released_any = True
                self._next = restart + 1
                if not first.filler:
                    out.append(Released(first, 0, resync=True))

        def give_up() -> bool:
            if force or len(self._held) > self.max_packets:
                return True
            oldest = min(p.arrival for p in self._held.values())
            return now >= oldest + self.max_delay

        self._take(self._held, out, give_up)

    def _take(self, held: dict[int, Packet], out: list[Released], give_up: Callable[[], bool]) -> None:
        """Release from ``held`` in order; jump a hole only when ``give_up()``."""
        lost = 0
        while held:
            assert self._next is not None
            packet = held.pop(self._next, None)
            if packet is None:
                if not give_up():
                    return
                first = min(held)
                lost += first - self._next
                self._skipped.update(range(max(self._next, first - MAX_MISORDER), first))
                self._next = first
                if len(self._skipped) > 2 * MAX_MISORDER:
                    self._skipped = {s for s in self._skipped if s >= first - MAX_MISORDER}
                continue
            self._released_any = True
            self._next += 1
            if packet.filler:
                continue  # its place is taken; a gap before it is reported with the next audio
            out.append(Released(packet, lost))
            lost = 0
