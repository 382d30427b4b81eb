"""One error convention for every command (samos.errors): each subcommand with each kind of bad input.

Every case must exit with its code (2: the command cannot run as given; 1: a failure at run time),
print one line on stderr that names the bad value, and never a traceback (only ``-v`` shows one).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from samos.cli import main
from samos.errors import EXIT_FAILURE, EXIT_USAGE, UsageError, run_command
from samos.monitor.cli import main as monitor_main
from samos.runtime.providers import installed_providers

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "samos" / "assets" / "demo_call_48k.flac"
DEFAULT_ONNX = REPO / "samos" / "models" / "default.onnx"
NO_GPU = installed_providers() == ["cpu"]


def _files(tmp: Path) -> dict[str, str]:
    """The bad inputs: a text file, a missing path, a config with a bad key, a tiny rated manifest."""
    (tmp / "notes.txt").write_text("not a model, not a checkpoint, not audio\n")
    (tmp / "bad.yaml").write_text("pretrain:\n  epochs: 1\n  bogus_key: 3\n")
    (tmp / "cpu.yaml").write_text(
        "model: {ssl: {family: none}}\npretrain:\n  data: {format: synthetic}\n  epochs: 1\n"
    )
    (tmp / "m.csv").write_text(f"path,mos,condition\n{DEMO},3.5,a\n")
    return {
        "txt": str(tmp / "notes.txt"),
        "missing": str(tmp / "missing.wav"),
        "bad_yaml": str(tmp / "bad.yaml"),
        "cpu_yaml": str(tmp / "cpu.yaml"),
        "csv": str(tmp / "m.csv"),
        "out": str(tmp / "out"),
        "onnx": str(DEFAULT_ONNX),
        "demo": str(DEMO),
    }


# (id, argv with {placeholders}, exit code, words that must be in the one-line message, condition)
CASES: list[tuple[str, list[str], int, list[str], bool]] = [
    # train
    ("train-missing-config", ["train", "--config", "{missing}"], 2, ["missing.wav", "no such"], True),
    ("train-bad-key", ["train", "--config", "{bad_yaml}", "--out", "{out}"], 2, ["bogus_key"], True),
    (
        "train-device-bogus",
        ["train", "--config", "{cpu_yaml}", "--out", "{out}", "--device", "bogus"],
        2,
        ["'bogus'", "auto, cpu, cuda or cuda:N"],
        True,
    ),
    (
        "train-device-cuda-missing",
        ["train", "--config", "{cpu_yaml}", "--out", "{out}", "--device", "cuda"],
        2,
        ["'cuda'", "not available here", "use cpu or auto"],
        NO_GPU,
    ),
    # eval
    (
        "eval-device-bogus",
        ["eval", "--csv", "{csv}", "--checkpoint", "{txt}", "--device", "bogus"],
        2,
        ["'bogus'", "auto, cpu, cuda or cuda:N"],
        True,
    ),
    (
        "eval-not-a-checkpoint",
        ["eval", "--csv", "{csv}", "--checkpoint", "{txt}"],
        2,
        ["notes.txt", "not a samos checkpoint"],
        True,
    ),
    ("eval-missing-manifest", ["eval", "--csv", "{missing}", "--model", "{onnx}"], 2, ["missing.wav"], True),
    ("eval-not-a-model", ["eval", "--csv", "{csv}", "--model", "{txt}"], 2, ["notes.txt"], True),
    (
        "eval-bad-group",
        ["eval", "--csv", "{csv}", "--model", "{onnx}", "--group", "speaker"],
        2,
        ["'speaker'", "no such column"],
        True,
    ),
    # export
    (
        "export-onnx-as-checkpoint",
        ["export", "--checkpoint", "{onnx}", "--out", "{out}.onnx"],
        2,
        ["default.onnx", "not a samos checkpoint", "ONNX model"],
        True,
    ),
    (
        "export-text-as-checkpoint",
        ["export", "--checkpoint", "{txt}", "--out", "{out}.onnx"],
        2,
        ["notes.txt", "not a torch checkpoint file"],
        True,
    ),
    # score
    ("score-missing-input", ["score", "{missing}", "--quiet"], 1, ["0 scored, 1 failed"], True),
    ("score-not-a-model", ["score", "{demo}", "--model", "{txt}"], 2, ["model error", "notes.txt"], True),
    (
        "score-unknown-provider",
        ["score", "{demo}", "--providers", "quantum"],
        2,
        ["'quantum'", "auto, tensorrt, cuda, cpu"],
        True,
    ),
    (
        "score-provider-not-installed",
        ["score", "{demo}", "--providers", "cuda"],
        2,
        ["cuda is not available here", "installed: cpu", "--fallback"],
        NO_GPU,
    ),
    ("score-bad-batch", ["score", "{demo}", "--batch-size", "0"], 2, ["--batch-size"], True),
    ("score-nothing", ["score"], 2, ["nothing to score"], True),
    # monitor
    ("monitor-no-source", ["monitor", "--no-ws"], 2, ["at least one source"], True),
    ("monitor-missing-file", ["monitor", "--file", "{missing}", "--no-ws"], 2, ["missing.wav"], True),
    ("monitor-not-a-model", ["monitor", "--file", "{demo}", "--model", "{txt}"], 2, ["notes.txt"], True),
    ("monitor-bad-window", ["monitor", "--file", "{demo}", "--window", "-1"], 2, ["window_seconds"], True),
    ("monitor-bad-ws", ["monitor", "--file", "{demo}", "--ws", "host:port"], 2, ["--ws", "HOST:PORT"], True),
    (
        "monitor-provider-not-installed",
        ["monitor", "--file", "{demo}", "--no-ws", "--providers", "cuda"],
        2,
        ["cuda is not available here", "installed: cpu"],
        NO_GPU,
    ),
    ("monitor-bad-config", ["monitor", "--config", "{bad_yaml}", "--file", "{demo}"], 2, ["pretrain"], True),
    (
        "monitor-backend-not-answering",
        ["monitor", "--file", "{demo}", "--no-ws", "--backend", "ray://127.0.0.1:9"],
        1,
        ["ray://127.0.0.1:9", "samos serve"],
        True,
    ),
    # data, bench, serve
    ("data-info-missing", ["data", "info", "{missing}"], 2, ["missing.wav"], True),
    (
        "data-simulate-bad-config",
        ["data", "simulate", "--config", "{bad_yaml}", "--out", "{out}"],
        2,
        ["pretrain"],
        True,
    ),
    ("bench-unknown", ["bench", "nosuch"], 2, ["'nosuch'", "throughput", "soak", "windows"], True),
    ("bench-bad-flag", ["bench", "throughput", "--bogus"], 2, ["--bogus"], True),
    ("serve-missing-model", ["serve", "--model", "{missing}"], 2, ["missing.wav"], True),
    ("serve-unknown-provider", ["serve", "--providers", "quantum"], 2, ["'quantum'"], True),
]


def _call(fn: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return fn(argv)
    except SystemExit as e:  # argparse: a flag that does not exist, a missing argument
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        pytest.param(a, c, w, id=i, marks=[] if ok else pytest.mark.skip(reason="needs a CPU-only machine"))
        for i, a, c, w, ok in CASES
    ],
)
def test_bad_input_is_one_line_with_the_right_exit_code(
    argv: list[str], code: int, words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _files(tmp_path)
    args = [a.format(**files) for a in argv]
    rc = _call(main, args)
    err = capsys.readouterr().err
    assert rc == code, (rc, err)
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    if not args[0] == "bench":  # argparse's own errors are usage + one error line
        last = lines[-1]
        assert last.startswith(("samos ", "monitor: ")), err
        for w in words:
            assert w in last, (w, last)
    else:
        assert all(w in err for w in words), err
    assert "weights_only" not in err, "never advise loading an untrusted pickle"


def test_monitor_entry_point_uses_the_same_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _call(monitor_main, ["--no-ws"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip().startswith("monitor: give at least one source")
    assert _call(monitor_main, ["--file", str(tmp_path / "gone.wav"), "--no-ws"]) == EXIT_USAGE
    assert "gone.wav" in capsys.readouterr().err


def test_monitor_port_in_use_is_a_run_time_failure(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc = _call(monitor_main, ["--file", str(DEMO), "--ws", f"127.0.0.1:{port}", "--quiet"])
    err = capsys.readouterr().err
    assert rc == EXIT_FAILURE and "Traceback" not in err, err
    assert err.strip().startswith("monitor: ") and str(port) in err, err


def _boom(args: argparse.Namespace) -> int:
    raise RuntimeError("disk on fire\n  (details)")


def test_unexpected_errors_are_one_line_unless_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = argparse.Namespace(verbose=False)
    assert run_command("samos x", _boom, quiet) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err == "samos x: error: RuntimeError: disk on fire (details) (run with -v for the traceback)\n"
    assert run_command("samos x", _boom, argparse.Namespace(verbose=True)) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1] == "samos x: error: RuntimeError: disk on fire (details)"

    def usage(args: argparse.Namespace) -> int:
        raise UsageError("--foo must be 1-3, got 7")

    assert run_command("samos x", usage, quiet) == EXIT_USAGE
    assert capsys.readouterr().err == "samos x: --foo must be 1-3, got 7\n"
