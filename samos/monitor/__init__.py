"""The real-time monitor (torch-free): source -> normalise -> window -> score -> aggregate -> publish."""

from samos.monitor.source import AudioChunk, Source, SourceEnded, SourceError

__all__ = ["AudioChunk", "Source", "SourceEnded", "SourceError"]
