"""Checks of the installed dependencies that fail with a message a person can act on.

torch and torchaudio are one C++ ABI: a torchaudio built against another torch fails deep inside its
compiled library (``undefined symbol: ...``). :func:`torch_pair_problem` turns that into one sentence
that names both versions and the command that installs the locked pair.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata

SETUP_HINT = "scripts/setup.sh dev installs the locked pair (requirements/dev.txt)"


def _release(version: str) -> str:
    """'2.11.0+cu130' -> '2.11.0'."""
    return version.split("+", 1)[0]


def torch_pair_problem() -> str | None:
    """What is wrong with the installed torch/torchaudio pair, or None when it loads (or is absent).

    Loads torchaudio's compiled extension, the part a mismatched pair breaks.
    """
    try:
        torch_version = metadata.version("torch")
        audio_version = metadata.version("torchaudio")
    except metadata.PackageNotFoundError:
        return None  # the runtime profile has neither: nothing to pair
    if _release(torch_version) != _release(audio_version):
        return (f"torch {torch_version} and torchaudio {audio_version} are not a matched pair "
                f"(torchaudio's C++ library is built for one torch release); {SETUP_HINT}")
    try:
        extension = importlib.import_module("torchaudio._extension")  # loads libtorchaudio
    except (ImportError, OSError) as e:
        return f"torchaudio {audio_version} does not load with torch {torch_version}: {e}; {SETUP_HINT}"
    if not getattr(extension, "_IS_TORCHAUDIO_EXT_AVAILABLE", False):
        return f"torchaudio {audio_version} has no compiled extension (torch {torch_version}); {SETUP_HINT}"
    return None
