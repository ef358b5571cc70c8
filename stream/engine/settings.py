"""The processing core's settings (section ``processing``): the state stage's knobs and what the core does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from bandits.offers import Catalogue
from models.behaviour.settings import SessionSettings


class ProcessingSettings(SessionSettings):
    """What the processing core does with each event (the state stage's knobs are :class:`SessionSettings`')."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attribution_window_s: float = Field(1800.0, gt=0, description="a purchase this long after a decision counts")
    dedup_window_s: float = Field(
        600.0, ge=0, description="an event_id seen again within this much event time is a duplicate (0: off)"
    )
    margin: float = Field(0.30, gt=0, le=1, description="gross margin on revenue")
    value_at_stake: Literal["expected_order", "cart"] = Field(
        "expected_order",
        description=(
            "the order each offer's value at stake (margin × order − cost) is computed on: the order expected "
            "from those who bought under the offer with such a cart (learned, bandits/order_value.py), or the cart"
        ),
    )
    drift_warmup_days: float = Field(
        28.0,
        ge=0,
        description=(
            "the online learners' drift monitors ignore examples from a partition younger than this (event time): "
            "its users' history features are still filling (two half-lives of the 14-day windows), which is no drift"
        ),
    )
    max_message_bytes: int = Field(65_536, ge=256, description="larger messages are dead letters")
    max_ts_skew_s: float = Field(
        366 * 86400.0,
        gt=0,
        description="allowed distance of ts from the record's broker time (or the watermark)",
    )
    ts_min: datetime = Field(
        datetime(1995, 1, 1, tzinfo=UTC), description="events stamped earlier are dead letters (timestamp_out_of_range)"
    )
    ts_max: datetime = Field(
        datetime(2100, 1, 1, tzinfo=UTC), description="events stamped later are dead letters (timestamp_out_of_range)"
    )
    offers: Catalogue = Field(
        default_factory=Catalogue,
        description="the offer catalogue: name, share of the cart, flat fee (bandits/offers.py)",
    )

    @field_validator("ts_min", "ts_max")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give bounds with a UTC offset")
        return value
