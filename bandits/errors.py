"""The errors :mod:`bandits` raises on purpose, under one base (itself under the root :class:`OfferstreamError`)."""

from __future__ import annotations

from stream.core.errors import OfferstreamError


class BanditError(OfferstreamError):
    """Root of the errors the bandits package raises on purpose."""


class OpeError(BanditError):
    """Logs that cannot be evaluated (nothing to join, a missing file, a malformed row)."""
