"""The errors :mod:`models` raises on purpose, under one base (itself under the root :class:`OfferstreamError`)."""

from __future__ import annotations

from stream.core.errors import ConfigError, OfferstreamError


class ModelError(OfferstreamError):
    """Root of the errors the models package raises on purpose."""


class ArchiveError(ModelError):
    """An archive that cannot be read or written as documented."""


class ImportFailed(ModelError):
    """An export file that cannot be read on (a broken CSV quote, bytes not in the given encoding)."""


class TierError(ModelError, ConfigError, ValueError):
    """Tiers that cannot work: a bad rate or window, overlapping or unsorted windows, unparseable text."""


class RegistryError(ModelError):
    """Models or metadata that cannot be written as a snapshot, or a registry used against its rules."""


class SnapshotRejected(RegistryError):
    """A snapshot that must not serve; ``reason`` says why in words."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"snapshot {version} refused: {reason}")
        self.version = version
        self.reason = reason
