from __future__ import annotations

import time

import numpy as np
import pytest
from fake_source import ListSource

from samos.monitor.source import AudioChunk, Source


def test_chunk_defaults_and_frames() -> None:
    t0 = time.monotonic()
    c = AudioChunk(np.zeros((480, 2), np.float32), 48_000)
    assert c.frames == 480 and c.dropped == 0 and c.t_capture >= t0


@pytest.mark.parametrize("kw", [{"samples": np.zeros((2, 2, 2))}, {"rate": 0}, {"dropped": -1}])
def test_chunk_rejects_bad_fields(kw: dict) -> None:
    args = {"samples": np.zeros(10, np.float32), "rate": 16_000, **kw}
    with pytest.raises(ValueError):
        AudioChunk(**args)


def test_protocol_is_runtime_checkable() -> None:
    assert isinstance(ListSource("a", [], 16_000), Source)
    assert not isinstance(object(), Source)
