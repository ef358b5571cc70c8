"""The one root exception of offerstream, the errors of the vocabulary, and why a message becomes a dead letter.

Each package keeps its own errors under this root: :mod:`models.errors`, :mod:`bandits.errors`,
:mod:`stream.kafka.errors`.
"""

from __future__ import annotations

from enum import StrEnum


class OfferstreamError(Exception):
    """Root of every error offerstream raises on purpose."""


class ConfigError(OfferstreamError):
    """Settings that cannot work (reported at start-up, before anything runs)."""


class DeadLetterReason(StrEnum):
    """Why a message was not processed. Stable strings: dashboards and alerts key on them."""

    OVERSIZED = "oversized"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    CONTRACT_VIOLATION = "contract_violation"
    ABSURD_VALUE = "absurd_value"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    DUPLICATE = "duplicate"
    PROCESSING_ERROR = "processing_error"


class InvalidMessage(OfferstreamError):
    """A message that breaks the event contract; carries the dead-letter reason and a human detail."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
