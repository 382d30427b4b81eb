"""Scorer: input contract, calibration, batching, and clear errors for bad model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_onnx import ModelFactory, tiny_reference

from samos.audio import load_audio
from samos.runtime import Calibration, DefaultModelMissingError, ModelFileError, Scorer
from samos.runtime import scorer as scorer_mod
from samos.runtime.modelinfo import KEY_FORMAT, KEY_WINDOW_SECONDS, file_sha256


def _batch(b: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-0.5, 0.5, (b, t)).astype(np.float32),
        rng.uniform(-0.5, 0.5, (b, 3 * t)).astype(np.float32),
    )


@pytest.fixture
def scorer(tiny_model: Path) -> Scorer:
    return Scorer(tiny_model, providers=("cpu",), threads=1)


def test_scores_match_the_graph(scorer: Scorer) -> None:
    w16, w48 = _batch(3, 8000)
    res = scorer.score(w16, w48)
    mos, std = tiny_reference(w16, w48)
    assert res.mos.dtype == np.float32 and res.mos.shape == (3,) and len(res) == 3
    np.testing.assert_allclose(res.mos, mos, atol=1e-4)
    np.testing.assert_allclose(res.std, std, atol=1e-4)


def test_calibration_is_applied(model_factory: ModelFactory) -> None:
    s = Scorer(model_factory(calibration=Calibration(-0.5, 4.0)), providers=("cpu",), threads=1)
    w16, w48 = _batch(2, 8000)
    res = s.score(w16, w48)
    mos, std = tiny_reference(w16, w48)
    np.testing.assert_allclose(res.mos, -0.5 * mos + 4.0, atol=1e-4)
    np.testing.assert_allclose(res.std, 0.5 * std, atol=1e-4)


def test_polynomial_calibration_is_applied_and_raw_scores_kept(model_factory: ModelFactory) -> None:
    cal = Calibration(poly=(-1.0, 1.5, 0.0, 0.0), domain=(2.0, 4.0))
    s = Scorer(model_factory(calibration=cal), providers=("cpu",), threads=1)
    assert s.info.calibration == cal
    w16, w48 = _batch(3, 8000)
    res = s.score(w16, w48)
    mos, std = tiny_reference(w16, w48)
    assert res.raw_mos is not None and res.raw_std is not None
    np.testing.assert_allclose(res.raw_mos, mos, atol=1e-4)
    np.testing.assert_allclose(res.raw_std, std, atol=1e-4)
    np.testing.assert_allclose(res.mos, cal.map_mos(mos), atol=1e-4)
    np.testing.assert_allclose(res.std, 1.5 * std, atol=1e-4)  # std scaled by the map's local slope
    assert not np.allclose(res.mos, mos, atol=1e-2)


def test_large_batches_are_split(tiny_model: Path) -> None:
    w16, w48 = _batch(7, 4000)
    whole = Scorer(tiny_model, providers=("cpu",), threads=1).score(w16, w48)
    split = Scorer(tiny_model, providers=("cpu",), threads=1, max_batch=3).score(w16, w48)
    np.testing.assert_allclose(whole.mos, split.mos, atol=1e-6)
    np.testing.assert_allclose(whole.std, split.std, atol=1e-6)


def test_float64_input_is_accepted(scorer: Scorer) -> None:
    w16, w48 = _batch(1, 8000)
    a = scorer.score(w16.astype(np.float64), w48.astype(np.float64))
    b = scorer.score(w16, w48)
    np.testing.assert_array_equal(a.mos, b.mos)


@pytest.mark.parametrize(
    ("w16", "w48", "match"),
    [
        (np.zeros(8000, np.float32), np.zeros(24000, np.float32), r"\[batch, samples\]"),
        (np.zeros((2, 8000), np.float32), np.zeros((2, 24001), np.float32), r"wave48 must have shape"),
        (np.zeros((2, 8000), np.float32), np.zeros((1, 24000), np.float32), r"wave48 must have shape"),
        (np.zeros((0, 8000), np.float32), np.zeros((0, 24000), np.float32), "empty batch"),
        (np.zeros((1, 8000), np.int16), np.zeros((1, 24000), np.int16), "float audio"),
        (np.zeros((1, 1000), np.float32), np.zeros((1, 3000), np.float32), "too short"),
        (None, np.zeros((1, 24000), np.float32), "needs wave16"),
        (np.zeros((1, 8000), np.float32), None, "needs wave48"),
    ],
)
def test_bad_inputs(scorer: Scorer, w16: np.ndarray | None, w48: np.ndarray | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        scorer.score(w16, w48)


def test_nan_input(scorer: Scorer) -> None:
    w16, w48 = _batch(2, 8000)
    w48[1, 5] = np.nan
    with pytest.raises(ValueError, match="wave48 holds 1 NaN/Inf"):
        scorer.score(w16, w48)
    w16[0, 0] = np.inf
    with pytest.raises(ValueError, match="wave16 holds 1 NaN/Inf"):
        scorer.score(w16, w48)
    w16[0, 0], w16[1, 0] = np.inf, -np.inf  # an Inf and a -Inf: their sum is NaN, still caught
    w48[1, 5] = 0.0
    with pytest.raises(ValueError, match="wave16 holds 2 NaN/Inf"):
        scorer.score(w16, w48)


def test_finite_skips_only_the_scan(scorer: Scorer) -> None:
    """``finite=True`` (the monitor's windows) scores the same; shapes and types are still checked, and
    float64 input, which may not fit float32, is still scanned."""
    w16, w48 = _batch(2, 8000)
    a, b = scorer.score(w16, w48), scorer.score(w16, w48, finite=True)
    assert np.array_equal(a.mos, b.mos) and np.array_equal(a.std, b.std)
    with pytest.raises(ValueError, match="shape"):
        scorer.score(w16[0], w48, finite=True)
    big16 = w16.astype(np.float64)
    big16[0, :2] = 1e308
    with pytest.raises(ValueError, match="wave16 holds 2 NaN/Inf"):
        scorer.score(big16, w48, finite=True)


def test_float64_samples_beyond_float32_are_refused(scorer: Scorer) -> None:
    """The model runs in float32: a float64 sample it cannot hold would reach it as Inf."""
    w16, w48 = _batch(1, 8000)
    big16 = w16.astype(np.float64)
    big16[0, :2] = 1e308
    with pytest.raises(ValueError, match="wave16 holds 2 NaN/Inf"):
        scorer.score(big16, w48)
    scorer.score(w16.astype(np.float64), w48.astype(np.float64))  # float64 in range: scored


@pytest.mark.parametrize("inputs", [("wave16",), ("wave48",)])
def test_single_branch_models(model_factory: ModelFactory, inputs: tuple[str, ...]) -> None:
    s = Scorer(model_factory(inputs=inputs), providers=("cpu",), threads=1)
    assert s.needs == inputs
    w16, w48 = _batch(2, 8000)
    fed = {"wave16": w16, "wave48": w48}
    got = s.score(
        fed["wave16"] if "wave16" in inputs else None, fed["wave48"] if "wave48" in inputs else None
    )
    ref = tiny_reference(w16 if "wave16" in inputs else None, w48 if "wave48" in inputs else None)
    np.testing.assert_allclose(got.mos, ref[0], atol=1e-4)
    # the unused input may still be given; its shape is then checked too
    np.testing.assert_allclose(s.score(w16, w48).mos, got.mos)


def test_corrupt_model_file(tmp_path: Path) -> None:
    p = tmp_path / "corrupt.onnx"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        Scorer(p, providers=("cpu",))


def test_truncated_model_file(tiny_model: Path, tmp_path: Path) -> None:
    data = tiny_model.read_bytes()
    p = tmp_path / "truncated.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated.onnx"):
        Scorer(p, providers=("cpu",))


def test_truncated_model_with_gpu_providers_requested(tiny_model: Path, tmp_path: Path) -> None:
    p = tmp_path / "truncated.onnx"
    p.write_bytes(tiny_model.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        Scorer(p)  # the default (auto) choice: a bad file is still a ModelFileError
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        Scorer(p, providers=("tensorrt", "cuda", "cpu"), fallback=True)


def _touch(p: Path) -> Path:
    p.write_bytes(b"")
    return p


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.onnx", "no such model file"),
        (lambda d: d, "is a folder"),
        (lambda d: _touch(d / "empty.onnx"), "empty model file"),
    ],
)
def test_missing_files(tmp_path: Path, make, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ModelFileError, match=match):
        Scorer(make(tmp_path), providers=("cpu",))


def test_incompatible_files(model_factory: ModelFactory) -> None:
    with pytest.raises(ModelFileError, match="format '2' is not supported"):
        Scorer(model_factory(meta_overrides={KEY_FORMAT: "2"}), providers=("cpu",))
    with pytest.raises(ModelFileError, match="not a samos model"):
        Scorer(model_factory(meta_overrides={KEY_FORMAT: None}), providers=("cpu",))
    with pytest.raises(ModelFileError, match="missing samos.window_seconds"):
        Scorer(model_factory(meta_overrides={KEY_WINDOW_SECONDS: None}), providers=("cpu",))
    with pytest.raises(ModelFileError, match="lack mos and mos_std"):
        Scorer(model_factory(output_names=("score", "mos_std")), providers=("cpu",))
    with pytest.raises(ModelFileError, match="differ from this runtime"):
        Scorer(
            model_factory(meta_overrides={"samos.ssl_rate": "8000", "samos.spec_rate": "48000"}),
            providers=("cpu",),
        )


def test_wrong_input_names(tmp_path: Path) -> None:
    from tiny_onnx import make_tiny_onnx

    p = make_tiny_onnx(tmp_path / "w.onnx")
    import onnx

    m = onnx.load(str(p))
    m.graph.input[0].name = "audio"
    for n in m.graph.node:
        n.input[:] = ["audio" if i == "wave16" else i for i in n.input]
    onnx.save(m, str(p))
    with pytest.raises(ModelFileError, match="are not samos inputs"):
        Scorer(p, providers=("cpu",))


def test_sha256_check(tiny_model: Path) -> None:
    Scorer(tiny_model, providers=("cpu",), sha256=file_sha256(tiny_model).upper())
    with pytest.raises(ModelFileError, match="sha256 does not match"):
        Scorer(tiny_model, providers=("cpu",), sha256="0" * 64)


def test_default_model_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(scorer_mod, "DEFAULT_MODEL", tmp_path / "default.onnx")
    with pytest.raises(DefaultModelMissingError, match="no embedded default model"):
        Scorer(None, providers=("cpu",))


def test_default_model_is_used(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    monkeypatch.setattr(scorer_mod, "DEFAULT_MODEL", tiny_model)
    assert Scorer(providers=("cpu",)).path == tiny_model


def test_bad_arguments(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Scorer(tiny_model, providers=("cpu",), max_batch=0)
    with pytest.raises(ValueError, match="threads"):
        Scorer(tiny_model, providers=("cpu",), threads=0)


def test_embedded_models_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> None:
    monkeypatch.setattr(scorer_mod, "MODELS_DIR", tmp_path)
    with pytest.raises(DefaultModelMissingError, match="no embedded compact model"):
        Scorer("compact", providers=("cpu",))
    (tmp_path / "compact.onnx").write_bytes(tiny_model.read_bytes())
    assert Scorer("compact", providers=("cpu",)).path == tmp_path / "compact.onnx"
    monkeypatch.setattr(scorer_mod, "DEFAULT_MODEL", tiny_model)
    assert Scorer("default", providers=("cpu",)).path == tiny_model
    # a Path is always a file: no name lookup
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match="compact: no such model file"):
        Scorer(Path("compact"), providers=("cpu",))


def test_the_embedded_compact_model() -> None:
    """The shipped student: 48 kHz input only, its incremental pair, scores for real speech."""
    s = Scorer("compact", providers=("cpu",), threads=1)
    assert s.path.name == "compact.onnx" and s.needs == ("wave48",)
    assert s.info.window_seconds == 4.0 and s.info.min_seconds == 1.0
    assert s.pair is not None and s.pair.frame_names == ["spec_frames"]
    audio, sr = load_audio(Path(scorer_mod.__file__).parents[1] / "assets" / "demo_call_48k.flac")
    res = s.score(None, audio[None, 20 * sr : 24 * sr].astype(np.float32))
    assert 1.0 <= float(res.mos[0]) <= 5.0 and float(res.std[0]) > 0
