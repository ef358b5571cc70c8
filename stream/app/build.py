"""The processing core and what it scores with, assembled from the settings: one recipe for worker, replay,
benches and the lab."""

from __future__ import annotations

import logging
import os
import socket
from zoneinfo import ZoneInfo

from bandits.eligibility import Eligibility
from bandits.factory import make_policy
from models.behaviour.features import FEATURES_VERSION
from models.errors import SnapshotRejected
from models.learners.factory import make_learners
from models.snapshots.registry import Registry, Snapshot
from stream.app.settings import Settings
from stream.engine.partition_state import PartitionState
from stream.engine.processor import Processor, SnapshotModels

log = logging.getLogger(__name__)


def build_processor(
    settings: Settings, model_snapshot: SnapshotModels | None = None, keep_changes: bool = False
) -> Processor:
    """The processing core with the configured policy and learners, seeded from the settings. With
    ``keep_changes`` (the Kafka worker) its partition states keep their changes for the state changelog."""
    m = settings.models
    tz = ZoneInfo(m.timezone)
    partition_state = None
    if keep_changes:

        def partition_state(partition: int) -> PartitionState:
            return PartitionState(partition, settings.processing, tz, track_changes=True)

    return Processor(
        settings.processing,
        make_policy(settings.policy),
        seed=settings.seed,
        learners=make_learners(settings.seed) if m.learners else {},
        model_snapshot=model_snapshot,
        tz=tz,
        archive_events=m.archive is not None,
        eligibility=Eligibility(settings.policy.eligibility, settings.processing.offers),
        partition_state=partition_state,
    )


def writer_id(settings: Settings, default_prefix: str) -> str:
    """The archive part name of this process: configured, else ``<prefix>-<host>-<pid>``."""
    if settings.models.archive_writer_id:
        return settings.models.archive_writer_id
    return f"{default_prefix}-{socket.gethostname()}-{os.getpid()}"


def load_promoted(settings: Settings) -> Snapshot | None:
    """The registry's promoted snapshot, or None (no registry, nothing promoted, or refused: logged)."""
    if settings.models.registry is None:
        return None
    try:
        snapshot = Registry(settings.models.registry).load_current(expected_features_version=FEATURES_VERSION)
    except SnapshotRejected as exc:
        log.error("snapshot %s refused: %s; scoring without a snapshot", exc.version, exc.reason)
        return None
    if snapshot is None:
        log.info(
            "registry %s has no promoted snapshot yet; scoring with the online learners only", settings.models.registry
        )
    return snapshot
