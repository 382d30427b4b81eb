"""`samos bench throughput` and the `samos bench` dispatcher."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from samos.bench import cli as bench_cli
from samos.bench import throughput
from samos.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_onnx import make_tiny_onnx  # noqa: E402


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_onnx(tmp_path / "tiny.onnx", window_seconds=3.0)


def test_json_report_side_by_side(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("speechmos")
    pytest.importorskip("distillmos")
    rc = main(["bench", "throughput", "--model", str(tiny), "--seconds", "0.8", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    models = report["models"]
    assert set(models) == {"samos", "samos_compact", "dnsmos", "distillmos"}
    windows = {n: m["window_s"] for n, m in models.items()}
    assert windows == {"samos": 3.0, "samos_compact": 4.0, "dnsmos": 9.01, "distillmos": 7.68}
    assert models["samos_compact"]["runtime"].endswith("compact.onnx")  # the embedded student
    for m in models.values():
        assert m["windows"] >= 3 and m["threads"] == 1
        assert m["audio_s_per_cpu_s"] > 0
        assert m["audio_s_per_cpu_s"] == pytest.approx(m["audio_s"] / m["cpu_s"], rel=0.01)
        assert 0 < m["window_latency_ms_p50"] <= m["window_latency_ms_p95"]
    # the hand-built graph is a few reductions: far cheaper than either peer
    assert models["samos"]["audio_s_per_cpu_s"] > models["dnsmos"]["audio_s_per_cpu_s"]
    assert report["input"]["seconds"] > 30  # the bundled real speech


def test_table_and_missing_default_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("speechmos")
    monkeypatch.setattr("samos.runtime.scorer.DEFAULT_MODEL", tmp_path / "none.onnx")
    out = tmp_path / "r.json"
    rc = main(["bench", "throughput", "--models", "samos,dnsmos", "--seconds", "0.3", "--out", str(out)])
    assert rc == 0  # dnsmos ran
    text = capsys.readouterr().out
    assert "no embedded default model" in text and "dnsmos" in text
    saved = json.loads(out.read_text())
    assert "error" in saved["models"]["samos"] and "error" not in saved["models"]["dnsmos"]


def test_measure_counts_windows_and_cpu() -> None:
    calls: list[int] = []

    def step(i: int) -> None:
        calls.append(i)
        np.linalg.svd(np.ones((60, 60)))

    r = throughput.measure(step, window_s=2.0, budget_s=0.0, min_windows=5)
    assert calls == [0, 1, 2, 3, 4, 5]  # one untimed warm-up
    assert r.windows == 5 and r.audio_s == 10.0
    assert r.cpu_s_per_audio_s == pytest.approx(r.cpu_s / 10.0, rel=0.01, abs=1e-5)


def test_windows_of_loops_short_audio() -> None:
    a = np.arange(48_000, dtype=np.float32)  # 1 s at 48 kHz
    w = throughput.windows_of(a, 2.5, 48_000)
    assert len(w) == 1 and len(w[0]) == 120_000
    assert len(throughput.windows_of(np.zeros(480_000, np.float32), 3.0, 16_000)) == 3


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "throughput", "--models", "nisqa"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["bench", "throughput", "--seconds", "0"]) == 2


def test_dispatch_missing_benchmark(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(bench_cli.BENCHES, "stream", ("samos.bench.not_there", "x"))
    assert main(["bench", "stream", "--json"]) == 2
    assert "not part of this installation" in capsys.readouterr().err


def test_dispatch_passes_options_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    class Fake:
        @staticmethod
        def add_arguments(p):  # noqa: ANN001, ANN205
            p.add_argument("--json", action="store_true")
            p.add_argument("--seconds", type=float)

        @staticmethod
        def run(args):  # noqa: ANN001, ANN205
            seen.update(vars(args))
            return 0

    monkeypatch.setattr(bench_cli, "_load", lambda name: Fake)
    assert main(["bench", "accuracy", "--json", "--seconds", "5"]) == 0
    assert seen == {"json": True, "seconds": 5.0}
