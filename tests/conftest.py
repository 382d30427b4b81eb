"""Suite-wide checks that run before any test module is imported."""

from __future__ import annotations

import pytest

from samos.deps import torch_pair_problem


def pytest_configure(config: pytest.Config) -> None:
    # A mismatched torch/torchaudio pair would otherwise surface as collection errors deep in the suite.
    problem = torch_pair_problem()
    if problem:
        pytest.exit(f"broken environment: {problem}", returncode=4)
