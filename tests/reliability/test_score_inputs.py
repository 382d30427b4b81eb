"""Bad and unusual input through ``samos score``: every case gets a row (a MOS or a clear error), the
run never crashes, and a good file scored in the same run gets exactly the MOS it gets alone."""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from reliability_helpers import speech_like

from samos.runtime import score_cli

pytestmark = pytest.mark.timeout(120)
RATE = 16_000


def score(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, str]], str]:
    """Run ``samos score`` in-process; returns (exit code, CSV rows, stderr)."""
    p = argparse.ArgumentParser()
    score_cli.add_arguments(p)
    rc = score_cli.run(p.parse_args([*argv, "--providers", "cpu", "--threads", "1", "--quiet"]))
    out, err = capsys.readouterr()
    return rc, list(csv.DictReader(io.StringIO(out))), err


def good(path: Path, seconds: float = 3.0, rate: int = RATE, channels: int = 1, level: float = 0.05) -> Path:
    x = speech_like(seconds, rate, level)
    sf.write(path, np.repeat(x[:, None], channels, axis=1) if channels > 1 else x, rate, subtype="FLOAT")
    return path


def bad_inputs(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, phrases its error must contain one of, ``|``-separated)."""
    x = speech_like(2.0, RATE, 0.05)
    cases: dict[str, tuple[Path, str]] = {}

    def case(name: str, path: Path, phrase: str) -> None:
        cases[name] = (path, phrase)

    (d / "empty.wav").write_bytes(b"")
    case("empty", d / "empty.wav", "empty")
    good(d / "whole.wav")
    raw = (d / "whole.wav").read_bytes()
    (d / "truncated_header.wav").write_bytes(raw[:20])
    case("truncated header", d / "truncated_header.wav", "not a readable audio file|no audio stream")
    (d / "corrupt_header.wav").write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00" + os.urandom(4000))
    case("corrupt header", d / "corrupt_header.wav", "not a readable audio file|no audio stream")
    nan = x.copy()
    nan[1000] = np.nan
    sf.write(d / "nan.wav", nan, RATE, subtype="FLOAT")
    case("NaN samples", d / "nan.wav", "NaN/Inf")
    inf = x.copy()
    inf[500] = np.inf
    sf.write(d / "inf.wav", inf, RATE, subtype="FLOAT")
    case("Inf samples", d / "inf.wav", "NaN/Inf")
    sf.write(d / "short.wav", x[: RATE // 10], RATE)
    case("0.1 s", d / "short.wav", "too short")
    (d / "notes.wav").write_text("this is not audio\n" * 100)
    case("text named .wav", d / "notes.wav", "not a readable audio file|no audio stream")
    (d / "image.flac").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    case("binary garbage named .flac", d / "image.flac", "not a readable audio file|no audio stream")
    case("missing path", d / "missing.wav", "no such file")
    (d / "dangling.wav").symlink_to(d / "nowhere.wav")
    case("dangling symlink", d / "dangling.wav", "no such file")
    sf.write(d / "rate7k.wav", speech_like(2.0, 7_000, 0.05), 7_000)
    case("7 kHz", d / "rate7k.wav", "")  # scored or refused with a clear message: see the test
    return cases


def test_every_bad_input_gets_a_clear_error_row_and_the_good_file_is_unaffected(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = bad_inputs(tmp_path)
    ok = good(tmp_path / "ok.wav")
    rc, alone, _ = score(capsys, str(ok), "--model", str(model_path))
    assert rc == 0 and alone[0]["error"] == ""
    paths = [str(p) for p, _ in cases.values()]
    argv = [*paths[:5], str(ok), *paths[5:]]
    rc, rows, err = score(capsys, *argv, "--model", str(model_path))
    assert rc == 1 and "Traceback" not in err  # 1: some inputs failed
    assert [r["path"] for r in rows] == argv  # one row per input, in order
    by_path = {r["path"]: r for r in rows}
    assert by_path[str(ok)]["mos"] == alone[0]["mos"] and by_path[str(ok)]["error"] == ""
    for name, (path, phrase) in cases.items():
        row = by_path[str(path)]
        if name == "7 kHz" and row["error"] == "":
            assert 1.0 <= float(row["mos"]) <= 5.0
            continue
        assert row["mos"] == "" and any(ph in row["error"] for ph in phrase.split("|")), (name, row)
        assert "Traceback" not in row["error"] and len(row["error"]) < 600, (name, row)
    failed = sum(r["error"] != "" for r in rows)
    assert f"{len(rows) - failed} scored, {failed} failed" in err


@pytest.mark.parametrize(
    "kind",
    ["dc_offset", "clipping", "silence", "rate11025", "rate22050", "rate44100", "rate96000", "rate192000"],
)
def test_unusual_but_valid_audio_is_scored(
    kind: str, tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rate = int(kind[4:]) if kind.startswith("rate") else RATE
    x = speech_like(3.0, rate, 0.05)
    if kind == "dc_offset":
        x = x + 0.4
    elif kind == "clipping":
        x = np.clip(x * 40, -1.0, 1.0)
    elif kind == "silence":
        x = np.zeros_like(x)
    path = tmp_path / f"{kind}.wav"
    sf.write(path, x.astype(np.float32), rate, subtype="FLOAT")
    rc, rows, err = score(capsys, str(path), "--model", str(model_path))
    assert rc == 0 and "Traceback" not in err
    assert rows[0]["error"] == "" and float(rows[0]["seconds"]) == pytest.approx(3.0, abs=0.01), rows
    if kind == "silence":  # the speech gate refuses dead air, as the monitor does: no MOS, no error
        assert rows[0]["mos"] == "" and rows[0]["scored_windows"] == "0" and rows[0]["n_windows"] == "1"
    elif kind == "dc_offset" and rows[0]["mos"] == "":  # the energy VAD sees no speech on a 0.4 offset
        assert rows[0]["scored_windows"] == "0"
    else:
        assert 1.0 <= float(rows[0]["mos"]) <= 5.0, rows


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 6, 7, 8])
def test_one_to_eight_channels_downmix_to_the_mono_score(
    channels: int, tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mono = good(tmp_path / "mono.wav")
    multi = good(tmp_path / f"ch{channels}.wav", channels=channels)
    assert sf.info(str(multi)).channels == channels
    rc, rows, _ = score(capsys, str(mono), str(multi), "--model", str(model_path))
    assert rc == 0 and rows[1]["error"] == ""
    assert float(rows[1]["mos"]) == pytest.approx(float(rows[0]["mos"]), abs=1e-3)


def test_bad_model_files_are_refused_with_exit_2(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = good(tmp_path / "ok.wav")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model_path.read_bytes()[:200])
    import onnx

    m = onnx.load(str(model_path))
    for p in m.metadata_props:
        if p.key == "samos.format":
            p.value = "99"
    wrong = tmp_path / "future.onnx"
    onnx.save(m, str(wrong))
    for model, phrase in (
        (tmp_path / "missing.onnx", "missing.onnx"),
        (truncated, "truncated.onnx"),
        (wrong, "format"),
    ):
        rc, rows, err = score(capsys, str(ok), "--model", str(model))
        assert rc == 2 and not rows, (model, err)
        assert "model error" in err and phrase in err and "Traceback" not in err, err


def peak_rss_mb(argv: list[str]) -> tuple[int, float, str]:
    """Run a command in a fresh Python that reports its child's peak RSS (MB)."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stderr)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=1800)
    rc, mb = r.stdout.split()
    return int(rc), float(mb), r.stderr


def long_file(path: Path, seconds: int, rate: int = 8_000) -> Path:
    """A speech-like FLAC of ``seconds`` written a minute at a time (never all in memory)."""
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for i in range(0, seconds, 60):
            f.write(speech_like(min(60, seconds - i), rate, 0.05, seed=i))
    return path


def check_long_file(tmp_path: Path, model_path: Path, seconds: int) -> float:
    path = long_file(tmp_path / "long.flac", seconds)
    out = tmp_path / "long.csv"
    argv = [
        sys.executable,
        "-m",
        "samos.cli",
        "score",
        str(path),
        "--model",
        str(model_path),
        "--out",
        str(out),
    ]
    rc, mb, err = peak_rss_mb([*argv, "--providers", "cpu", "--threads", "1", "--quiet"])
    assert rc == 0, err[-2000:]
    row = next(csv.DictReader(out.open()))
    assert row["error"] == "" and float(row["seconds"]) == pytest.approx(seconds, abs=0.01)
    assert int(row["n_windows"]) == seconds - 3  # the monitor's 4 s windows every 1 s
    return mb


LONG_FILE_MB = 400
"""Peak RSS allowed for scoring a long file: the process itself (~150 MB) plus bounded buffers,
whatever the length (a 2 h file at 8 kHz holds 115 MB of PCM16, 1.4 GB as 48 kHz float32)."""


def test_twenty_minute_file_is_scored_in_bounded_memory(tmp_path: Path, model_path: Path) -> None:
    mb = check_long_file(tmp_path, model_path, 20 * 60)
    print(f"\n20 min 8 kHz FLAC: peak RSS {mb:.0f} MB")
    assert mb < LONG_FILE_MB


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_hour_file_is_scored_in_bounded_memory(tmp_path: Path, model_path: Path) -> None:
    mb = check_long_file(tmp_path, model_path, 2 * 3600)
    print(f"\n2 h 8 kHz FLAC: peak RSS {mb:.0f} MB")
    assert mb < LONG_FILE_MB
