"""Rated-audio data: manifest readers, the synthetic corpus and the SSL feature cache (torch-free);
the torch dataset lives in ``samos.data.dataset``."""

from samos.data.manifest import (
    FORMATS,
    Item,
    Manifest,
    ManifestError,
    SkipReport,
    read_manifest,
    read_manifests,
    validate,
)

__all__ = [
    "FORMATS",
    "Item",
    "Manifest",
    "ManifestError",
    "SkipReport",
    "read_manifest",
    "read_manifests",
    "validate",
]
