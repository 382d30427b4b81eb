"""The speech detector's dense graph: the same network as Silero's source file, rebuilt reproducibly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest

import samos.runtime.vad as vad
from samos.audio import load_audio, resample
from samos.export.vad_dense import VadGraphError, build, conv_matrix, main
from samos.runtime.vad import FRAME, SpeechDetector, VadModel

DEMO = Path(vad.__file__).resolve().parents[1] / "assets" / "demo_call_48k.flac"


@pytest.fixture(scope="module")
def talk() -> np.ndarray:
    """20 s of the bundled demo call (real talkers, pauses between sentences) at 16 kHz."""
    x, rate = load_audio(DEMO)
    return resample(x, rate, 16_000)[: 20 * 16_000].astype(np.float32)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("columns", [1, 2, 4])
def test_conv_matrix_is_the_convolution(columns: int, stride: int) -> None:
    rng = np.random.default_rng(columns * 10 + stride)
    w = rng.standard_normal((5, 3, 3)).astype(np.float32)  # [out, in, kernel]
    b = rng.standard_normal(5).astype(np.float32)
    x = rng.standard_normal((columns, 3)).astype(np.float32)  # [time, in]
    m, bias, out_columns = conv_matrix(w, b, columns, stride)
    got = (x.reshape(-1) @ m + bias).reshape(out_columns, 5)
    padded = np.concatenate([np.zeros((1, 3)), x, np.zeros((1, 3))])  # padding 1 on both sides
    want = np.stack(
        [np.einsum("oik,ki->o", w, padded[t * stride : t * stride + 3]) + b for t in range(out_columns)]
    )
    assert out_columns == (columns - 1) // stride + 1
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rebuilding_gives_the_shipped_file_byte_for_byte() -> None:
    data = build().SerializeToString()
    assert hashlib.sha256(data).hexdigest() == vad.VAD_DENSE_SHA256
    assert data == vad.VAD_DENSE_MODEL.read_bytes()


def test_probabilities_equal_the_source_graph(talk: np.ndarray) -> None:
    source, dense = VadModel(vad.VAD_SOURCE_MODEL), VadModel()
    assert dense.path == vad.VAD_DENSE_MODEL
    want = SpeechDetector(source).push(talk)
    got = SpeechDetector(dense).push(talk)
    assert got.shape == want.shape == (len(talk) // FRAME,)
    assert float(np.abs(got - want).max()) < 1e-5
    assert 0.3 < float((want >= 0.5).mean()) < 1.0  # real speech and real pauses were compared
    # block by block as the monitor calls it (one scoring hop, 31 frames), state handed on
    det = SpeechDetector(dense)
    hops = np.concatenate([det.push(talk[i : i + 16_000]) for i in range(0, len(talk), 16_000)])
    assert float(np.abs(hops - want).max()) < 1e-5
    # and noise, silence and full-scale audio, where the magnitudes are extreme
    rng = np.random.default_rng(0)
    for x in (rng.standard_normal(32_000) * 0.3, np.zeros(16_000), np.sign(rng.standard_normal(16_000))):
        x = x.astype(np.float32)
        a, b = SpeechDetector(source).push(x), SpeechDetector(dense).push(x)
        assert float(np.abs(a - b).max()) < 1e-5


def test_only_the_silero_sequence_graph_is_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VadGraphError, match="not the Silero sequence graph"):
        build(vad.VAD_DENSE_MODEL)  # already dense: no convolutions left
    bad = tmp_path / "changed.onnx"
    m = onnx.load(str(vad.VAD_SOURCE_MODEL))
    m.graph.initializer[0].raw_data = bytes(len(m.graph.initializer[0].raw_data))
    onnx.save(m, str(bad))
    assert build(bad) is not None  # another file with this structure is rewritten as asked
    assert main(["--source", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "x.onnx")]) == 2
    # the vendored source is checked against its digest before anything is derived from it
    monkeypatch.setattr("samos.export.vad_dense.VAD_SOURCE_MODEL", bad)
    with pytest.raises(VadGraphError, match="sha256"):
        build(bad)
