"""The processing core and what it scores with, assembled from the settings: one recipe for worker, replay,
benches and the lab."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from zoneinfo import ZoneInfo

from bandits.eligibility import Eligibility
from bandits.factory import make_policy
from models.behaviour.features import FEATURES_VERSION
from models.errors import SnapshotRejected
from models.learners.factory import make_learners
from models.snapshots.registry import Registry, Snapshot
from stream.app.settings import Settings
from stream.core.errors import ConfigError
from stream.engine.partition_state import PartitionState, in_memory_states
from stream.engine.processor import Processor, SnapshotModels

log = logging.getLogger(__name__)


def build_processor(
    settings: Settings, model_snapshot: SnapshotModels | None = None, keep_changes: bool = False
) -> Processor:
    """The processing core with the configured policy and learners, seeded from the settings. With
    ``keep_changes`` (the Kafka worker) its partition states keep their changes for the state changelog."""
    m = settings.models
    tz = ZoneInfo(m.timezone)
    partition_state = in_memory_states(settings.processing, tz, track_changes=keep_changes)
    if keep_changes and settings.state_store == "rocksdb":
        try:
            from models.behaviour.rocksdb_store import RocksDictStore
        except ImportError as exc:
            raise ConfigError(
                "state_store = 'rocksdb' needs the rocksdb extra: pip install 'offerstream[rocksdb]'"
            ) from exc

        stores = partition_store_dir(settings)

        def partition_state(partition: int) -> PartitionState:
            # never trusted across lives: a partition's state is rebuilt from the changelog on assignment
            path = stores / str(partition)
            shutil.rmtree(path, ignore_errors=True)
            return PartitionState(partition, settings.processing, tz, store=RocksDictStore(path), track_changes=True)

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


def partition_store_dir(settings: Settings) -> Path:
    """Where ``state_store = "rocksdb"`` keeps each partition's store (one RocksDB per partition)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in settings.kafka.group_id)
    return settings.state_dir / "partitions" / safe


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
