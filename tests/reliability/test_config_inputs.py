"""Bad configuration and model files given to ``monitor``: exit status 2 and one clear line, never a
traceback."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import soundfile as sf
from reliability_helpers import speech_like

from samos.monitor.cli import main

pytestmark = pytest.mark.timeout(60)

BAD_CONFIGS = [
    ("ws:\n  prot: 1\n", "ws.prot"),
    ("colour: blue\n", "colour"),
    ("window:\n  window_seconds: four\n", "window.window_seconds"),
    ("window:\n  hop_seconds: 99\n", "hop_seconds"),
    ("worker:\n  max_batch: 0\n", "max_batch"),
    ("ws:\n  port: [1, 2]\n", "ws.port"),
    ("http:\n  max_body_bytes: 10\n", "max_body_bytes"),
    ("alerts:\n  webhook: ftp://x\n", "webhook"),
    ("aggregate:\n  weighting: median\n", "weighting"),
    ("window: [1, 2]\n", "window"),
    ("- just\n- a list\n", ""),
    ("window: {window_seconds: 4\n", ""),  # YAML syntax error
]


@pytest.mark.parametrize(("text", "phrase"), BAD_CONFIGS)
def test_bad_config_is_refused_clearly(
    text: str, phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    rc = main(["--config", str(path), "--file", str(tmp_path / "x.wav"), "--no-ws"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.startswith("monitor: "), err
    assert phrase in err and str(path) in err, err


def test_bad_model_files_are_refused_clearly(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sf.write(tmp_path / "a.wav", speech_like(2.0, 16_000), 16_000)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model_path.read_bytes()[:300])
    m = onnx.load(str(model_path))
    for prop in m.metadata_props:
        if prop.key == "samos.format":
            prop.value = "2"
    wrong_version = tmp_path / "v2.onnx"
    onnx.save(m, str(wrong_version))
    (tmp_path / "text.onnx").write_text("not a model")
    cases = [
        (tmp_path / "missing.onnx", "missing.onnx"),
        (truncated, "truncated.onnx"),
        (wrong_version, "format"),
        (tmp_path / "text.onnx", "text.onnx"),
        (tmp_path, str(tmp_path)),
    ]
    for model, phrase in cases:
        rc = main(["--model", str(model), "--file", str(tmp_path / "a.wav"), "--no-ws", "--providers", "cpu"])
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err and phrase in err, (model, err)


def test_bad_flags_are_refused_clearly(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, phrase in (
        (["--ws", "host:port"], "--ws"),
        (["--window", "0.01"], "window_seconds"),
        (["--providers", "quantum"], "quantum"),
    ):
        rc = main(["--model", str(model_path), "--file", str(tmp_path / "x.wav"), *argv])
        err = capsys.readouterr().err
        assert rc == 2 and phrase in err and "Traceback" not in err, (argv, err)
