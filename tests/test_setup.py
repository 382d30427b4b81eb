"""The set-up is reproducible: pyproject.toml, uv.lock and requirements/*.txt agree, the .venv holds the
locked versions, and torch/torchaudio load as a pair (scripts/setup.sh, scripts/lock.sh)."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from samos.deps import torch_pair_problem

ROOT = Path(__file__).resolve().parents[1]
RELOCK = "run scripts/lock.sh and commit pyproject.toml, uv.lock and requirements/"


def _uv(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    uv = pytest.importorskip("uv", reason="uv is in the dev profile").find_uv_bin()
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_NO_PROGRESS": "1"}
    return subprocess.run([uv, *args, "--offline"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _profiles() -> dict[str, list[str]]:
    lines = (ROOT / "requirements" / "profiles").read_text().split("\n")
    return {name: extras.split(",") for name, extras in (ln.split() for ln in lines if ln.strip())}


def test_lock_matches_pyproject(tmp_path: Path) -> None:
    """A range changed in pyproject.toml without re-locking fails here, offline."""
    result = _uv("lock", "--check", tmp_path=tmp_path)
    assert result.returncode == 0, f"pyproject.toml and uv.lock disagree: {RELOCK}\n{result.stderr}"


@pytest.mark.parametrize("profile", sorted(_profiles()))
def test_requirements_are_the_lock_exported(profile: str, tmp_path: Path) -> None:
    """What setup.sh installs (requirements/<profile>.txt) is exactly uv.lock's export."""
    extras = [a for extra in _profiles()[profile] for a in ("--extra", extra)]
    result = _uv("export", "--frozen", "--no-emit-project", "--no-header", *extras, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "requirements" / f"{profile}.txt").read_text()
    assert result.stdout == committed, f"requirements/{profile}.txt is not uv.lock's export: {RELOCK}"


def _locked(profile: str) -> dict[str, str]:
    """Package -> exact version that requirements/<profile>.txt installs on this interpreter."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / f"{profile}.txt").read_text().split("\n"):
        if not line or line[0] in " #-":
            continue
        req = Requirement(line.rstrip(" \\"))
        if req.marker is None or req.marker.evaluate():
            pins[req.name] = str(req.specifier).removeprefix("==")
    return pins


def test_every_pin_is_exact() -> None:
    for profile in _profiles():
        for name, version in _locked(profile).items():
            assert version and not any(c in version for c in "<>=!~*,"), f"{profile}: {name} {version}"


def test_torch_and_torchaudio_are_pinned_as_a_pair() -> None:
    pins = _locked("dev")
    assert pins["torch"] == pins["torchaudio"], f"torch {pins['torch']} vs torchaudio {pins['torchaudio']}"


def test_installed_versions_are_the_locked_ones() -> None:
    """The .venv running the tests holds what the lock says (a stale .venv: run scripts/setup.sh dev)."""
    wrong = []
    for name, version in _locked("dev").items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} missing (lock: {version})")
            continue
        if have.split("+")[0] != version.split("+")[0]:
            wrong.append(f"{name} {have} (lock: {version})")
    assert not wrong, "the environment is not the lock: scripts/setup.sh dev\n" + "\n".join(wrong)


def test_torchaudio_extension_loads_with_this_torch() -> None:
    """torchaudio's compiled library loads: the failure a mismatched pair gives, as one clear message."""
    pytest.importorskip("torch")
    assert torch_pair_problem() is None, torch_pair_problem()


def test_a_mismatched_pair_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry served torchaudio 2.11.1 without torch 2.11.1: that pair is refused by name."""
    versions = {"torch": "2.11.0+cu130", "torchaudio": "2.11.1"}
    monkeypatch.setattr(metadata, "version", versions.__getitem__)
    problem = torch_pair_problem()
    assert problem is not None
    assert "torch 2.11.0+cu130 and torchaudio 2.11.1 are not a matched pair" in problem
    assert "scripts/setup.sh dev" in problem
