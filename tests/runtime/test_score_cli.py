"""`samos score`: inputs (files, folders, manifest, stdin), outputs, error rows, batching, exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.cli import main
from samos.runtime import score_cli

P835 = Path("/work/shared/data/p835")
DEMO = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder: real speech at 48 and 16 kHz (one stereo flac), a long file, a broken file, a text file."""
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    demo, sr = sf.read(str(DEMO), dtype="float32")
    if P835.is_dir():
        shutil.copy(P835 / "fb48k" / "c0_f1.wav", d / "a_clean.wav")
        shutil.copy(P835 / "wb16k" / "c5_m1.wav", d / "sub" / "b_wb.wav")
    else:
        sf.write(str(d / "a_clean.wav"), demo[: 4 * sr], sr)
        sf.write(str(d / "sub" / "b_wb.wav"), demo[4 * sr : 8 * sr : 3], sr // 3)
    sf.write(str(d / "c_stereo.flac"), np.stack([demo[: 3 * sr], 0.5 * demo[: 3 * sr]], axis=1), sr)
    sf.write(str(d / "d_long.wav"), demo[: 9 * sr], sr)
    (d / "sub" / "e_broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (d / "notes.txt").write_text("not audio")
    return d


def _read_csv(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def test_folder_with_broken_file(
    corpus: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.csv"
    rc = main(
        [
            "score",
            str(corpus),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--providers",
            "cpu",
            "--threads",
            "1",
        ]
    )
    assert rc == 1, "one input failed: the run goes on, the exit status says so"
    rows = _read_csv(out)
    names = [Path(r["path"]).name for r in rows]
    assert names == ["a_clean.wav", "c_stereo.flac", "d_long.wav", "b_wb.wav", "e_broken.wav"]  # sorted walk
    broken = rows[-1]
    assert broken["error"] and broken["mos"] == "" and "not a readable audio file" in broken["error"]
    assert broken["status"] == "error"
    for r in rows[:-1]:
        assert r["error"] == "" and 0 < float(r["mos_std"]) and np.isfinite(float(r["mos"]))
        assert r["status"] == "ok"
    assert rows[2]["n_windows"] == "6"  # 9 s at the monitor's 4 s windows every 1 s: starts 0..5 s
    err = capsys.readouterr().err
    assert "4 scored, 1 failed" in err and "on cpu" in err
    assert "file/s" in err or "100%" in err  # the progress bar went to stderr


def test_batched_equals_one_by_one(corpus: Path, tiny_model: Path, tmp_path: Path) -> None:
    outs = []
    for bs in ("1", "7"):
        out = tmp_path / f"b{bs}.jsonl"
        assert (
            main(
                [
                    "score",
                    str(corpus),
                    "--model",
                    str(tiny_model),
                    "--out",
                    str(out),
                    "--batch-size",
                    bs,
                    "--windows",
                    "--quiet",
                    "--providers",
                    "cpu",
                ]
            )
            == 1  # the corpus holds a broken file
        )
        outs.append([json.loads(line) for line in out.read_text().splitlines()])
    a, b = outs
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        if ra.get("error"):
            assert rb["error"] == ra["error"]
            continue
        assert ra["mos"] == pytest.approx(rb["mos"], abs=2e-4)
        assert [w["mos"] for w in ra["windows"]] == pytest.approx([w["mos"] for w in rb["windows"]], abs=2e-4)


def test_jsonl_windows_field(corpus: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    assert (
        main(
            [
                "score",
                str(corpus / "d_long.wav"),
                "--model",
                str(tiny_model),
                "--out",
                str(out),
                "--windows",
                "--quiet",
                "--providers",
                "cpu",
            ]
        )
        == 0
    )
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"path", "mos", "mos_std", "seconds", "n_windows", "windows"} <= set(row)
    assert len(row["windows"]) == row["n_windows"] == row["scored_windows"] == 6
    assert row["statuses"] == {"ok": 6} and {w["status"] for w in row["windows"]} == {"ok"}
    assert "loss_ratio" in row["windows"][0]["diagnostics"]
    assert row["windows"][-1]["end_s"] == pytest.approx(9.0, abs=1e-3)
    assert row["mos"] == pytest.approx(np.mean([w["mos"] for w in row["windows"]]), abs=1e-3)


def test_csv_windows_rows(corpus: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.csv"
    assert (
        main(
            [
                "score",
                str(corpus / "d_long.wav"),
                str(corpus / "a_clean.wav"),
                "--model",
                str(tiny_model),
                "--out",
                str(out),
                "--windows",
                "--quiet",
                "--providers",
                "cpu",
            ]
        )
        == 0
    )
    rows = _read_csv(out)
    overall = [r for r in rows if r["window"] == ""]
    assert [Path(r["path"]).name for r in overall] == ["d_long.wav", "a_clean.wav"]
    assert [r["window"] for r in rows[:6]] == ["", "0", "1", "2", "3", "4"]
    assert [r["status"] for r in rows[:3]] == ["ok", "ok", "ok"] and rows[0]["scored_windows"] == "6"


def test_manifest_and_stdin(
    corpus: Path,
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\nd_long.wav,1\nsub/b_wb.wav,2\nmissing.wav,3\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{corpus / 'a_clean.wav'}\n\n"))
    rc = main(
        [
            "score",
            "-",
            "--csv",
            str(manifest),
            "--root",
            str(corpus),
            "--column",
            "file",
            "--model",
            str(tiny_model),
            "--quiet",
            "--providers",
            "cpu",
        ]
    )
    assert rc == 1  # missing.wav failed
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [Path(r["path"]).name for r in rows] == ["a_clean.wav", "d_long.wav", "b_wb.wav", "missing.wav"]
    assert "no such file" in rows[-1]["error"]


def test_manifest_without_the_column(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file\nx.wav\n")
    assert main(["score", "--csv", str(manifest), "--model", str(tiny_model), "--providers", "cpu"]) == 2
    assert "no column 'path'" in capsys.readouterr().err


def test_usage_errors(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--model", str(tiny_model)]) == 2
    assert "nothing to score" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00" * 100)
    assert main(["score", str(DEMO), "--model", str(bad)]) == 2
    assert "model error" in capsys.readouterr().err
    assert main(["score", str(DEMO), "--model", str(tiny_model), "--batch-size", "0"]) == 2


def test_default_model_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("samos.runtime.scorer.DEFAULT_MODEL", tmp_path / "none.onnx")
    assert main(["score", str(DEMO)]) == 2
    assert "no embedded default model" in capsys.readouterr().err


def test_collect_inputs_extensions(corpus: Path) -> None:
    paths = score_cli.collect_inputs([str(corpus)])
    assert all(p.suffix in (".wav", ".flac") for p in paths) and len(paths) == 5


def test_a_file_without_speech_says_why_and_is_counted_apart(
    corpus: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file the speech gate refuses in every window has no MOS, its status gives the reason, and
    the summary line does not count it as scored (a score of 2.6 for no speech would be a lie, and
    an empty cell with no reason a riddle)."""
    rng = np.random.default_rng(0)
    sf.write(str(tmp_path / "hum.wav"), (0.05 * rng.standard_normal(5 * 16_000)).astype(np.float32), 16_000)
    sf.write(str(tmp_path / "dead.wav"), np.zeros(5 * 16_000, np.float32), 16_000)
    out = tmp_path / "s.jsonl"
    args = ["score", str(corpus / "a_clean.wav"), str(tmp_path / "hum.wav"), str(tmp_path / "dead.wav")]
    rc = main([*args, "--model", str(tiny_model), "--out", str(out), "--quiet", "--providers", "cpu"])
    assert rc == 0, "a file without speech is not a failure"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "no_speech", "silence"]
    assert rows[0]["mos"] is not None and rows[1]["mos"] is None and rows[2]["mos"] is None
    assert rows[1]["statuses"] == {"no_speech": rows[1]["n_windows"]}
    err = capsys.readouterr().err
    assert "1 scored, 2 without a MOS (status 1 no_speech, 1 silence), 0 failed" in err, err
