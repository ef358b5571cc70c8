"""The errors of the Kafka edge, under the root :class:`~stream.core.errors.OfferstreamError`."""

from __future__ import annotations

from stream.core.errors import OfferstreamError


class DeliveryError(OfferstreamError):
    """The broker did not acknowledge an output record; its input offsets must not be committed."""


class SourceStalled(DeliveryError):
    """The consumer stopped receiving records although its partitions lag: its clients must be rebuilt."""


class TransactionAborted(DeliveryError):
    """The batch's transaction did not commit: nothing of it is visible, and the worker's state is ahead."""


class WorkerFenced(OfferstreamError):
    """Another worker with the same transactional id started: this one must stop (it is a zombie)."""


class StateTopicUnreadable(DeliveryError):
    """A topic the worker's state comes back from (a partition's state changelog, the fleet's model topic) could
    not be read to its end: what it holds must not be used, nor the partitions it restores processed, yet."""
