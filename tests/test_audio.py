"""samos.audio.to_mono: the down-mix every input goes through (files, sound cards, the monitor)."""

from __future__ import annotations

import numpy as np
import pytest

from samos.audio import AudioError, to_mono


def test_mono_float32_comes_back_as_it_is_or_as_a_view() -> None:
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    assert to_mono(x) is x
    column = x[:, None].copy()  # soundfile's layout for a mono file: [n, 1]
    got = to_mono(column)
    assert got.shape == (100,) and got.dtype == np.float32 and np.shares_memory(got, column)
    np.testing.assert_array_equal(got, x)


def test_channels_are_averaged_and_int_pcm_scaled() -> None:
    stereo = np.array([[0.5, -0.5], [1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(to_mono(stereo), np.array([0.0, 0.5], np.float32))
    pcm = np.array([[16384], [-32768]], np.int16)  # one channel of int16: scaled, not averaged
    np.testing.assert_array_equal(to_mono(pcm), np.array([0.5, -1.0], np.float32))
    assert to_mono(np.array([[16384, 0]], np.int16)).tolist() == [0.25]
    assert to_mono(np.zeros(3, np.float64)).dtype == np.float32


def test_other_shapes_are_refused() -> None:
    with pytest.raises(AudioError, match="expected"):
        to_mono(np.zeros((2, 2, 2), np.float32))
