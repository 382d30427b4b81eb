"""The runtime and `samos score` work in a process where `import torch` fails."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "samos" / "assets" / "demo_call_48k.flac"

BLOCKER = textwrap.dedent(
    """
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchaudio"):
                raise ImportError(f"{name} is blocked: the runtime must be torch-free")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


@pytest.fixture
def no_torch_env(tmp_path: Path) -> dict[str, str]:
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(block), str(REPO)])
    return env


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_blocker_blocks(no_torch_env: dict[str, str]) -> None:
    r = _run("import torch", no_torch_env)
    assert r.returncode != 0 and "blocked" in r.stderr


def test_score_cli_without_torch(no_torch_env: dict[str, str], tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    code = textwrap.dedent(
        f"""
        import sys
        from samos.cli import main
        rc = main(["score", {str(DEMO)!r}, {str(tmp_path / "missing.wav")!r}, "--model", {str(tiny_model)!r},
                   "--out", {str(out)!r}, "--windows", "--quiet"])
        assert "torch" not in sys.modules, "torch was imported"
        import samos.runtime, samos.runtime.windows, samos.runtime.score_cli  # noqa: F401
        assert "torch" not in sys.modules
        sys.exit(rc)
        """
    )
    r = _run(code, no_torch_env)
    assert r.returncode == 1, r.stderr  # missing.wav failed
    rows = list(csv.DictReader(open(out, newline="")))
    overall = [row for row in rows if row["window"] == ""]
    assert len(overall) == 2 and overall[0]["error"] == "" and "no such file" in overall[1]["error"]
    assert "1 scored, 1 failed" in r.stderr
