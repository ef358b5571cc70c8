"""The watcher that follows a registry's ``CURRENT`` and hot-swaps each newly promoted snapshot into a worker."""

from __future__ import annotations

import logging
from collections.abc import Callable

from models.errors import SnapshotRejected
from models.snapshots.registry import Registry, Snapshot

log = logging.getLogger(__name__)


class RegistryWatcher:
    """Follows ``CURRENT`` and loads each newly promoted snapshot; a worker calls :meth:`poll` as time passes.

    A snapshot that fails verification is refused once (one ERROR line) and the one in use is kept; that version
    is not tried again until ``CURRENT`` names another.
    """

    def __init__(
        self,
        registry: Registry,
        expected_features_version: str | None,
        registry_poll_s: float,
        on_swap: Callable[[Snapshot], None] | None = None,
    ) -> None:
        if registry_poll_s < 0:
            raise ValueError(f"registry_poll_s must be >= 0, got {registry_poll_s}")
        self.registry = registry
        self.expected_features_version = expected_features_version
        self.registry_poll_s = registry_poll_s
        self.on_swap = on_swap
        self._current: Snapshot | None = None
        self._refused: str | None = None
        self._last_poll_ms: int | None = None

    @property
    def current(self) -> Snapshot | None:
        """The snapshot in use (None until one has loaded)."""
        return self._current

    def poll(self, now_ms: int) -> Snapshot | None:
        """The newly loaded snapshot when ``CURRENT`` moved to a good one; None otherwise (or when not yet due)."""
        if self._last_poll_ms is not None and now_ms - self._last_poll_ms < self.registry_poll_s * 1000:
            return None
        self._last_poll_ms = now_ms
        try:
            version = self.registry.current_version()
        except OSError as exc:
            log.warning("cannot read %s: %s", self.registry.root / "CURRENT", exc)
            return None
        held = self._current.version if self._current is not None else None
        if version is None or version == held:
            if version is None:
                log.debug("no promoted model snapshot in %s yet", self.registry.root)
            self._refused = None
            return None
        if version == self._refused:
            return None
        try:
            snapshot = self.registry.load(version, self.expected_features_version)
        except SnapshotRejected as exc:
            self._refused = version
            log.error("%s; keeping %s", exc, held or "no snapshot")
            return None
        except OSError as exc:  # the registry's storage is unreachable: not the snapshot's fault, try again later
            log.warning(
                "cannot read snapshot %s from %s (%s); keeping %s, retrying in %.0f s",
                version,
                self.registry.root,
                exc,
                held or "no snapshot",
                self.registry_poll_s,
            )
            return None
        self._refused = None
        self._current = snapshot
        log.info("model snapshot %s loaded (was %s)", version, held or "none")
        if self.on_swap is not None:
            self.on_swap(snapshot)
        return snapshot
