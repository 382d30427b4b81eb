"""Fixtures of the reliability suite (helpers live in reliability_helpers.py).

Every test here is marked ``reliability``; the long soak and the 2 h file are also marked ``slow``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import make_level_model


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny level model (MOS falls with loudness), 1 s windows, 0.5 s minimum."""
    return make_level_model(tmp_path_factory.mktemp("model") / "level.onnx", window_seconds=1.0)


@pytest.fixture(scope="session")
def scorer(model_path: Path) -> Any:
    from samos.runtime.scorer import Scorer

    return Scorer(model_path, providers=("cpu",), threads=1)
