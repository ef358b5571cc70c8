"""The models' settings (section ``models``): online learners, the snapshot registry, the archive, the retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ModelSettings(BaseModel):
    """The online learners, the nightly snapshot the worker scores with, the archive and the retrain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learners: bool = Field(True, description="run the River online learners (intent, price sensitivity, segments)")
    timezone: str = Field("UTC", description="the shop's time zone, for the hour-of-day and weekday features")
    registry: Path | None = Field(None, description="model registry the worker loads promoted snapshots from")
    registry_poll_s: float = Field(30.0, gt=0, description="how often a worker looks for a newly promoted snapshot")
    archive: Path | None = Field(None, description="day-partitioned archive of valid events and decisions")
    archive_writer_id: str | None = Field(None, description="part-file name in the archive (default: host-pid)")
    tiers: str = Field("0-30:1,30-90:0.5,90-180:0.1", description="recency sample: MIN-MAX:RATE age tiers in days")
    weighted: bool = Field(True, description="weight each sampled row by 1/rate of its tier")
    gate_metric: Literal["auc", "logloss", "ece"] = Field(
        "logloss", description="held-out metric of the gate (log loss judges calibration and ranking)"
    )
    gate_tolerance: float = Field(0.005, ge=0, description="a challenger may be this much worse and still go live")
    holdout_days: int = Field(1, ge=1, description="most recent days held out for the champion/challenger gate")
    retrain_at: str = Field("02:00", pattern=r"^\d{2}:\d{2}$", description="UTC time of the nightly retrain")
    drift_retrain_min_interval_s: float = Field(
        6 * 3600.0, gt=0, description="at most one drift-triggered early retrain per this many seconds"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("tiers")
    @classmethod
    def _valid_tiers(cls, value: str) -> str:
        from models.history.sampling import parse_tiers

        parse_tiers(value)
        return value
