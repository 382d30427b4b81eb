"""Fixtures for the monitor tests: a real (tiny, hand-built) samos ONNX model through the real runtime,
speech-like test signals, and an ALSA capture device backed by a raw file (real PortAudio, no hardware)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from monitor_helpers import make_level_model, speech_like  # noqa: F401 (re-exported for fixtures)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_level_model(tmp_path_factory.mktemp("model") / "level.onnx")


@pytest.fixture(scope="session")
def scorer(model_path: Path):  # noqa: ANN201
    from samos.runtime.scorer import Scorer

    return Scorer(model_path, providers=("cpu",), threads=1)


ASOUNDRC = """pcm.samos_raw {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
pcm.samos_test {{
    type plug
    slave {{
        pcm "samos_raw"
        rate {rate}
        channels 1
        format S16_LE
    }}
}}
"""


@pytest.fixture
def alsa_home(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A HOME holding an .asoundrc whose ``samos_test`` capture device plays a raw s16le file
    (a 440 Hz tone, 30 s at 48 kHz). Returns (home, the int16 samples)."""
    rate = 48_000
    x = (np.sin(2 * np.pi * 440 * np.arange(30 * rate) / rate) * 8000).astype("<i2")
    raw = tmp_path / "in.raw"
    x.tofile(raw)
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(raw=raw, rate=rate))
    return tmp_path, x
