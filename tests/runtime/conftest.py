"""Fixtures: tiny hand-built samos ONNX models."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_onnx import ModelFactory, make_tiny_onnx


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return make_tiny_onnx(tmp_path / "tiny.onnx")


@pytest.fixture
def model_factory(tmp_path: Path) -> ModelFactory:
    counter = iter(range(10_000))

    def make(**kw: object) -> Path:
        return make_tiny_onnx(tmp_path / f"m{next(counter)}.onnx", **kw)  # type: ignore[arg-type]

    return make
