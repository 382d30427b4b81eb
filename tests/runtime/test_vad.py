"""The vendored Silero VAD: state across frames, chunking, checksum, speech against noise (real audio)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import samos.runtime.vad as vad
from samos.audio import load_audio, resample
from samos.runtime.vad import FRAME, SpeechDetector, VadModel, VadModelError, default_model, speech_prob

DEMO = Path(vad.__file__).resolve().parents[1] / "assets" / "demo_call_48k.flac"


@pytest.fixture(scope="module")
def talk() -> np.ndarray:
    """12 s of the bundled demo call (real P.835 talkers) at 16 kHz."""
    x, rate = load_audio(DEMO)
    return resample(x, rate, 16_000)[: 12 * 16_000].astype(np.float32)


def test_speech_is_speech_and_noise_is_not(talk: np.ndarray) -> None:
    p = speech_prob(talk)
    assert p.shape == (len(talk) // FRAME,) and p.dtype == np.float32
    assert 0.4 < float((p >= 0.5).mean()) < 1.0  # talkers with pauses between sentences
    noise = np.random.default_rng(0).standard_normal(len(talk)).astype(np.float32) * 0.1
    assert float((speech_prob(noise) >= 0.5).mean()) == 0.0
    assert float(speech_prob(np.zeros(16_000, np.float32)).max()) < 0.1


def test_chunked_pushes_give_the_whole_file_probabilities(talk: np.ndarray) -> None:
    whole = speech_prob(talk)
    det = SpeechDetector()
    sizes = np.random.default_rng(1).integers(1, 3000, size=400)
    parts, i = [], 0
    for n in sizes:
        parts.append(det.push(talk[i : i + n]))
        i += int(n)
    parts.append(det.push(talk[i:]))
    assert np.array_equal(np.concatenate(parts), whole)
    assert det.frames == len(whole)


def test_state_carries_across_frames(talk: np.ndarray) -> None:
    # frame by frame (one ONNX call each, state and context handed on) equals one call for all
    det = SpeechDetector()
    one_by_one = np.concatenate([det.push(talk[i : i + FRAME]) for i in range(0, 64 * FRAME, FRAME)])
    assert np.array_equal(one_by_one, speech_prob(talk[: 64 * FRAME]))
    # and the state matters: the same frame scored cold, without what came before, differs
    cold = speech_prob(talk[32 * FRAME : 64 * FRAME])
    assert not np.array_equal(cold, one_by_one[32:])


def test_blocks_of_the_longest_call_match(talk: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = speech_prob(talk)
    monkeypatch.setattr(vad, "MAX_BLOCK", 7)  # many blocks per push
    assert np.array_equal(speech_prob(talk), whole)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="mono 16 kHz"):
        SpeechDetector().push(np.zeros((2, 1024), np.float32))


def test_session_is_shared_and_single_threaded() -> None:
    assert SpeechDetector().model is default_model() is SpeechDetector().model
    opts = default_model().session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert default_model().session.get_providers() == ["CPUExecutionProvider"]


def test_a_changed_model_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "silero.onnx"
    shutil.copy(vad.VAD_MODEL, bad)
    with bad.open("ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(vad, "VAD_MODEL", bad)
    with pytest.raises(VadModelError, match="sha256"):
        VadModel()
    monkeypatch.setattr(vad, "VAD_MODEL", tmp_path / "missing.onnx")
    with pytest.raises(VadModelError, match="no VAD model"):
        VadModel()


def test_vendored_with_licence_and_shipped_as_package_data() -> None:
    here = vad.VAD_DIR
    assert "MIT License" in (here / "LICENSE").read_text() and "Silero" in (here / "LICENSE").read_text()
    readme = (here / "README.md").read_text()
    assert vad.VAD_SHA256 in readme and vad.VAD_SOURCE_SHA256 in readme
    assert vad.VAD_MODEL == vad.VAD_DENSE_MODEL and vad.VAD_SOURCE_MODEL.is_file()
    pyproject = (Path(vad.__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"models/vad/*"' in pyproject


def test_imports_without_torch() -> None:
    code = (
        "import sys, numpy as np; from samos.runtime.vad import speech_prob; "
        "speech_prob(np.zeros(2048, np.float32)); sys.exit('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
