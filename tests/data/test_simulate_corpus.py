"""A 3-clip corpus in a temporary folder: files, manifest, resume, determinism, summary, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.cli import main
from samos.config import ConfigError, dump_yaml
from samos.data.simulate.config import (
    DegradeConfig,
    LabelConfig,
    SimulateConfig,
    SourcesConfig,
    UtteranceConfig,
)
from samos.data.simulate.corpus import COLUMNS, ManifestError, simulate, summarise
from samos.data.simulate.labels import Labeller

KLETTRES = "/usr/share/klettres"
pytestmark = pytest.mark.skipif(not Path(KLETTRES).is_dir(), reason="klettres-data is not installed")


def _cfg(clips: int = 3) -> SimulateConfig:
    return SimulateConfig(
        clips=clips,
        seed=5,
        val_fraction=0.34,
        sources=SourcesConfig(
            klettres=KLETTRES, fillets=None, espeak=False, tuxpaint=None, weights=(1, 0, 0, 0)
        ),
        utterance=UtteranceConfig(seconds=(1.5, 2.0)),
        # independent of the shared noise folder (recorded noise has its own tests)
        degrade=DegradeConfig(noise_dir=None),
    )


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    # no teacher (bandwidth term only) keeps this fast; the teacher has its own tests in test_labels.py
    simulate(_cfg(), out, log=_quiet, labeller=Labeller(None))
    return out


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_files_and_manifest(corpus: Path) -> None:
    rows = _rows(corpus)
    assert [r["path"] for r in rows] == ["audio/000000.wav", "audio/000001.wav", "audio/000002.wav"]
    assert list(rows[0]) == COLUMNS
    for r in rows:
        info = sf.info(corpus / r["path"])
        assert info.samplerate == 48_000 and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.duration - float(r["seconds"])) < 0.01
        assert 1.0 <= float(r["mos"]) <= 5.0
        assert r["source"] == "klettres" and r["split"] in ("train", "val")
        assert float(r["path_bw_hz"]) <= float(r["source_bw_hz"])
    summary = json.loads((corpus / "summary.json").read_text())
    assert (
        summary["rows"] == 3 and summary["missing_files"] == 0 and sum(summary["mos_histogram"].values()) == 3
    )


def test_resume_skips_and_reruns_are_identical(corpus: Path, tmp_path: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (corpus / "audio").iterdir()}
    res = simulate(_cfg(), corpus, log=_quiet, labeller=Labeller(None))
    assert res.made == 0 and res.skipped == 3
    assert before == {p.name: p.stat().st_mtime_ns for p in (corpus / "audio").iterdir()}
    # a fresh run with the same seed makes the same clip; a lost clip is made again, identically
    (corpus / "meta" / "000001.json").unlink()
    res = simulate(_cfg(), corpus, log=_quiet, labeller=Labeller(None))
    assert res.made == 1
    other = tmp_path / "again"
    simulate(_cfg(2), other, log=_quiet, labeller=Labeller(None))
    a, _ = sf.read(corpus / "audio/000001.wav")
    b, _ = sf.read(other / "audio/000001.wav")
    assert np.array_equal(a, b)
    assert _rows(other)[1] == _rows(corpus)[1]


def test_workers_make_the_same_corpus(tmp_path: Path) -> None:
    cfg = SimulateConfig(**{**_cfg(2).__dict__, "labels": LabelConfig(teacher="none")})
    simulate(cfg, tmp_path / "serial", workers=1, log=_quiet)
    simulate(cfg, tmp_path / "parallel", workers=2, log=_quiet)
    assert _rows(tmp_path / "serial") == _rows(tmp_path / "parallel")
    for name in ("000000.wav", "000001.wav"):
        a, _ = sf.read(tmp_path / "serial" / "audio" / name)
        b, _ = sf.read(tmp_path / "parallel" / "audio" / name)
        assert np.array_equal(a, b)


def test_a_different_config_is_refused(corpus: Path) -> None:
    changed = SimulateConfig(**{**_cfg().__dict__, "seed": 6})
    with pytest.raises(ConfigError, match="different config"):
        simulate(changed, corpus, log=_quiet, labeller=Labeller(None))


def test_info_and_manifest_errors(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(corpus / "manifest.csv")]) == 0
    assert "rows 3, missing files 0" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("file,score\na.wav,3\n")
    with pytest.raises(ManifestError, match="path and mos"):
        summarise(bad)
    assert main(["data", "info", str(bad)]) == 2
    assert "path and mos" in capsys.readouterr().err


def test_cli_reports_a_missing_source_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(dump_yaml(SimulateConfig(sources=SourcesConfig(klettres=str(tmp_path / "none")))))
    assert main(["data", "simulate", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "klettres-data" in err and "Traceback" not in err


class _RecordingTeacher:
    """Keeps every signal it is asked to score."""

    def __init__(self) -> None:
        self.heard: list[np.ndarray] = []

    def score(self, audio: np.ndarray, rate: int) -> float:
        self.heard.append(np.array(audio, dtype=np.float32))
        return 3.0


@pytest.mark.parametrize("as_written", [False, True])
def test_as_written_labels_exactly_what_the_wav_file_holds(tmp_path: Path, as_written: bool) -> None:
    cfg = SimulateConfig(**{**_cfg(2).__dict__, "labels": LabelConfig(as_written=as_written)})
    teacher = _RecordingTeacher()
    simulate(cfg, tmp_path / "o", log=_quiet, labeller=Labeller(teacher))
    written = [sf.read(tmp_path / "o" / r["path"], dtype="float32")[0] for r in _rows(tmp_path / "o")]
    assert len(teacher.heard) == len(written) == 2
    same = [np.array_equal(h, w) for h, w in zip(teacher.heard, written, strict=True)]
    # as_written labels the file's own samples; otherwise the float signal, which differs from its
    # 16-bit file by the rounding (a clip whose last stage was a 16-bit decoder is already exact)
    assert all(same) if as_written else not all(same)
    assert all(
        np.max(np.abs(h - w)) <= 1.0 / 32768 + 1e-7 for h, w in zip(teacher.heard, written, strict=True)
    )


@pytest.mark.parametrize("teacher", ["distillmos", "distillmos_whole"])
def test_cli_makes_a_tiny_corpus_with_the_real_teacher(tmp_path: Path, teacher: str) -> None:
    pytest.importorskip("distillmos")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(dump_yaml(SimulateConfig(**{**_cfg(1).__dict__, "labels": LabelConfig(teacher=teacher)})))
    assert main(["data", "simulate", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    row = _rows(tmp_path / "o")[0]
    assert 1.0 <= float(row["teacher_mos"]) <= 5.0 and 1.0 <= float(row["mos"]) <= 5.0
    assert f"teacher: {teacher}" in (tmp_path / "o" / "simulate.yaml").read_text()
    cached = list((tmp_path / "o" / "cache" / "teacher").rglob("*.json"))
    assert cached and all(teacher + "-" in p.read_text() for p in cached)


def test_progress_lines_when_not_a_terminal() -> None:
    from samos.data.simulate.corpus import Progress

    lines: list[str] = []
    bar = Progress(60, lines.append, tty=False, every=25, seconds=1e9)
    for _ in range(60):
        bar.step()
    assert len(lines) == 3 and "25/60 clips" in lines[0] and "60/60 clips (100 %)" in lines[-1]
    assert "[####################]" in lines[-1] and "ETA 0 s" in lines[-1]


def test_summary_counts_each_stage(corpus: Path) -> None:
    s = summarise(corpus / "manifest.csv")
    stages = s["by_stage"]
    assert isinstance(stages, dict)
    rows = _rows(corpus)
    assert sum(stages.values()) == sum(len(r["degradations"].split("+")) for r in rows)
    by_stage = s["mos_by_stage"]
    assert isinstance(by_stage, dict) and set(by_stage) == set(stages)


def test_listen_check_measures_the_clips(corpus: Path) -> None:
    from samos.data.simulate.listencheck import listen_check

    r = listen_check(corpus)
    assert r["clips"] == 3
    seconds = r["seconds"]
    assert isinstance(seconds, dict) and 1.5 <= seconds["min"] <= seconds["max"] <= 2.0
    clean = r["clean_active_dbov"]
    assert isinstance(clean, dict)
    if clean:  # clean clips sit at the configured active level
        assert clean["min"] == pytest.approx(-26.0, abs=0.1) and clean["max"] == pytest.approx(-26.0, abs=0.1)


def test_speed_times_each_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from samos.data.simulate.speed import main as speed_main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(dump_yaml(SimulateConfig(**{**_cfg(1).__dict__, "labels": LabelConfig(teacher="none")})))
    assert speed_main([str(cfg), "2"]) == 0
    out = capsys.readouterr().out
    assert "start-up" in out and "2 clips:" in out and "CPU-s per clip" in out
