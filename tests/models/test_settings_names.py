"""The models' knobs reach their constructors under their settings names (no renaming on the way)."""

from __future__ import annotations

import dataclasses
import inspect

from models.settings import ModelSettings
from models.snapshots.retrain import RetrainConfig
from models.snapshots.schedule import RetrainScheduler
from models.snapshots.watcher import RegistryWatcher


def _arguments(cls: type) -> set[str]:
    return set(inspect.signature(cls).parameters)


def test_the_watcher_the_scheduler_and_the_retrain_take_the_settings_names():
    fields = set(ModelSettings.model_fields)
    assert {"registry_poll_s"} <= _arguments(RegistryWatcher) & fields
    assert {"retrain_at", "drift_retrain_min_interval_s"} <= _arguments(RetrainScheduler) & fields
    config_fields = {f.name for f in dataclasses.fields(RetrainConfig)}
    assert {"tiers", "weighted", "holdout_days", "gate_metric", "gate_tolerance"} <= config_fields & fields


def test_their_public_attributes_hold_the_configured_values(tmp_path):
    watcher = RegistryWatcher(None, None, registry_poll_s=12.5)  # type: ignore[arg-type]
    scheduler = RetrainScheduler(retrain_at="03:30", registry=tmp_path, drift_retrain_min_interval_s=900)
    assert watcher.registry_poll_s == 12.5
    assert (scheduler.retrain_at, scheduler.drift_retrain_min_interval_s) == ("03:30", 900)
