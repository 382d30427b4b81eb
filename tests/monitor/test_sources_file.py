from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from monitor_helpers import speech_like

from samos.monitor.source import Source, SourceEnded, SourceError
from samos.monitor.sources.file import FileSource, derive_name


def write_opus(path: Path, x: np.ndarray, rate: int = 48_000) -> Path:
    """Encode mono float32 ``x`` as Ogg/Opus with PyAV (a compressed format soundfile cannot read here)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libopus", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(x[None].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)
    return path


async def read_all(src: FileSource, limit: int = 100_000) -> list:
    out = []
    try:
        for _ in range(limit):
            out.append(await src.recv())
    except SourceEnded:
        pass
    return out


async def test_wav_fast_keeps_rate_and_channels(tmp_path: Path) -> None:
    x = np.stack([speech_like(1.0, 22_050), speech_like(1.0, 22_050, seed=1)], axis=1)
    sf.write(tmp_path / "two.wav", x, 22_050, subtype="FLOAT")
    src = await FileSource.open(str(tmp_path / "two.wav"), realtime=False, chunk_seconds=0.02)
    assert isinstance(src, Source) and (src.name, src.rate, src.kind) == ("two", 22_050, "file")
    chunks = await read_all(src)
    got = np.concatenate([c.samples for c in chunks])
    np.testing.assert_array_equal(got, x.astype(np.float32))
    assert chunks[0].samples.shape == (441, 2)
    with pytest.raises(SourceEnded):
        await src.recv()
    await src.close()


async def test_chunks_across_decoded_blocks_are_whole_and_exact(tmp_path: Path) -> None:
    """The reader decodes about 1 s at a time: chunks that straddle two blocks, and a loop's rewind,
    still give every sample once, in order, in full-size chunks (the last may be shorter)."""
    x = speech_like(2.5, 16_000)
    sf.write(tmp_path / "long.flac", x, 16_000)
    src = await FileSource.open(str(tmp_path / "long.flac"), realtime=False, chunk_seconds=0.03)
    chunks = await read_all(src)
    sizes = [c.frames for c in chunks]
    assert sizes[:-1] == [480] * (len(sizes) - 1) and 0 < sizes[-1] <= 480 and sum(sizes) == len(x)
    want = sf.read(tmp_path / "long.flac", dtype="float32")[0]
    np.testing.assert_array_equal(np.concatenate([c.samples[:, 0] for c in chunks]), want)
    await src.close()
    looped = await FileSource.open(str(tmp_path / "long.flac"), realtime=False, chunk_seconds=0.03, loop=True)
    again = np.concatenate([(await looped.recv()).samples[:, 0] for _ in range(len(chunks) + 10)])
    np.testing.assert_array_equal(again[: sum(sizes)], want)
    np.testing.assert_array_equal(again[sum(sizes) :], want[: len(again) - sum(sizes)])
    await looped.close()


async def test_realtime_pacing_and_loop(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", speech_like(0.3, 16_000), 16_000)
    src = await FileSource.open(str(tmp_path / "a.wav"), name="paced", realtime=True, loop=True)
    t0 = time.monotonic()
    chunks = [await src.recv() for _ in range(40)]  # 0.8 s: the 0.3 s clip looped
    took = time.monotonic() - t0
    assert 0.7 < took < 1.5 and src.name == "paced"
    assert chunks[-1].t_capture >= chunks[0].t_capture + 0.7
    await src.close()
    with pytest.raises(SourceEnded):
        await src.recv()


async def test_compressed_file_through_pyav(tmp_path: Path) -> None:
    path = write_opus(tmp_path / "c.ogg", speech_like(1.0, 48_000))
    src = await FileSource.open(str(path), realtime=False)
    chunks = await read_all(src)
    total = sum(c.frames for c in chunks)
    assert src.rate == 48_000 and abs(total - 48_000) < 2_000
    assert all(c.samples.dtype == np.float32 for c in chunks)
    await src.close()


@pytest.mark.parametrize("content", [None, b"", b"this is not audio at all" * 100])
async def test_unreadable_input_is_a_clear_error(tmp_path: Path, content: bytes | None) -> None:
    p = tmp_path / "bad.wav"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(SourceError, match="bad.wav"):
        await FileSource.open(str(p))


def test_derive_name() -> None:
    assert derive_name("/a/b/call-1.wav") == "call-1"
    assert derive_name("http://example.org/live/radio.mp3?x=1") == "radio"
    assert derive_name("rtsp://cam.local/") == "cam.local"
