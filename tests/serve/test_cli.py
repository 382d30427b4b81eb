"""`samos serve` argument errors: reported before any Ray process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from samos.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-replicas", "0"], "num_replicas must be >= 1"),
        (["--max-batch", "0"], "max_batch must be >= 1"),
        (["--batch-wait-ms", "-1"], "batch_wait_ms"),
        (["--http", "127.0.0.1:http"], "expected HOST:PORT"),
        (["--model", "/nonexistent/model.onnx"], "no such model file"),
    ],
)
def test_bad_arguments_exit_2_without_starting_ray(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    assert main(["serve", *args]) == 2
    assert message in capsys.readouterr().err
    assert not ray.is_initialized()


def test_a_folder_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
