"""Opus loss concealment on the plain RTP path: Debian's ffmpeg streams Opus RTP through a loopback
relay that drops packets; RtpSource decodes with the real libopus (sources/opus_plc.py) and the
audio of the lost packets is concealed, not silence, while the loss is still counted. A timestamp
gap without lost packets (DTX) is never concealed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from rtp_peers import FFMPEG, NO_FFMPEG, RtpSender, ffmpeg_rtp, lossy, start_relay, stop, write_wav
from test_rtp import collect

from samos.bench.webrtc_load import encode_opus
from samos.monitor.sources import opus_plc
from samos.monitor.sources.rtp import RtpOptions, RtpSource, RtpSpec

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not opus_plc.available(), reason="libopus cannot be loaded"),
]
RATE = 48_000
PACKET = 960  # 20 ms
DROP = {40, 41, 75, 110}  # a 40 ms gap and two 20 ms ones, all inside the sound


def voiced(seconds: float) -> np.ndarray:
    """A steady vowel-like sound (harmonics of 150 Hz), so that every 20 ms of it is loud."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 9))
    return (0.25 * wave / np.max(np.abs(wave))).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


@pytest.mark.skipif(FFMPEG is None, reason=NO_FFMPEG)
@pytest.mark.parametrize("conceal", [True, False])
async def test_rtp_opus_loss_is_concealed(tmp_path: Path, conceal: bool) -> None:
    wav = write_wav(tmp_path / "vowel.wav", voiced(3.0))
    spec = RtpSpec("127.0.0.1", 0, "sfu", codec="opus", idle=1.0)
    source = await RtpSource.open(spec, RtpOptions(conceal=conceal))
    relay = await start_relay(source.local_address, lossy(drop=DROP))
    proc = ffmpeg_rtp(wav, relay.port, "opus", "-fec:a", "1", "-packet_loss", "10")
    try:
        chunks = await collect(source, timeout=20.0)
    finally:
        stop(proc)
        assert relay.transport is not None
        relay.transport.close()
        await source.close()
    st = source.stats
    assert len(relay.dropped) == len(DROP) and st.lost_packets == len(DROP) and st.decode_errors == 0
    assert st.lost_samples == len(DROP) * PACKET, "loss is counted whether concealed or not"
    # the timeline is exact: every packet ffmpeg sent is 20 ms of the stream, received or lost
    assert sum(len(c.samples) + c.dropped for c in chunks) == relay.count * PACKET
    lost_in_chunks = sum(c.dropped + c.concealed for c in chunks)
    assert lost_in_chunks == len(DROP) * PACKET, "what reaches dropped_seconds / the loss ratio"
    heard = rms(np.concatenate([c.samples[c.concealed :] for c in chunks]))
    assert heard > 0.05
    if not conceal:
        assert st.concealed_samples == 0 and all(c.concealed == 0 for c in chunks)
        assert sorted(c.dropped for c in chunks if c.dropped) == [PACKET, PACKET, 2 * PACKET]
        return
    assert st.concealed_samples == len(DROP) * PACKET and all(c.dropped == 0 for c in chunks)
    concealed = [c.samples[: c.concealed] for c in chunks if c.concealed]
    assert sorted(len(x) for x in concealed) == [PACKET, PACKET, 2 * PACKET]
    for x in concealed:  # libopus's PLC/FEC continues the vowel: not silence, about as loud
        assert rms(x) > 0.3 * heard, (rms(x), heard)


async def test_a_dtx_gap_in_opus_is_silence_not_concealment() -> None:
    packets = encode_opus(voiced(0.6))
    source = await RtpSource.open(RtpSpec("127.0.0.1", 0, "dtx", codec="opus", idle=0.4))
    sender = RtpSender(source.local_address[1], pt=111)
    try:
        for i, p in enumerate(packets):
            ts_index = i if i < 10 else i + 5  # 100 ms without packets, sequence numbers unbroken
            sender.send(sender.packet(i, p, PACKET, ts_index=ts_index))
            await asyncio.sleep(0.002)
        chunks = await collect(source)
    finally:
        sender.close()
        await source.close()
    st = source.stats
    assert st.lost_packets == 0 and st.lost_samples == 0 and st.concealed_samples == 0
    assert st.silence_samples == 5 * PACKET
    assert all(c.concealed == 0 and c.dropped == 0 for c in chunks)
    audio = np.concatenate([c.samples for c in chunks])
    assert len(audio) == (len(packets) + 5) * PACKET
    assert np.all(audio[10 * PACKET : 15 * PACKET] == 0)
