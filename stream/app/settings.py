"""The one settings object: defaults < TOML file (``--config``) < environment < command-line flags.

Environment variables use the prefix ``OFFERSTREAM_`` and ``__`` between levels, for example
``OFFERSTREAM_PROCESSING__MARGIN=0.25`` or ``OFFERSTREAM_KAFKA__GROUP_ID=shop-a``. The conventional
``KAFKA_BOOTSTRAP_SERVERS`` is honoured too. Everything is validated at start-up; secrets are ``SecretStr``
and print as ``**********``. This module is the only one that reads the environment.

>>> s = load_settings(env={"OFFERSTREAM_PROCESSING__MARGIN": "0.25"})
>>> s.processing.margin, s.kafka.decisions_topic
(0.25, 'offerstream.decisions')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bandits.context import DEFAULT_CONTEXT, DEFAULT_LIFT_CONTEXT, ContextEncoder
from bandits.eligibility import Eligibility, EligibilityRule
from bandits.linear import LIFT_BY, VALUE_KEY, WARM_START
from bandits.offers import Catalogue
from stream.core.contract import EVENT_TYPES
from stream.core.errors import ConfigError

ENV_PREFIX = "OFFERSTREAM_"


class KafkaSettings(BaseModel):
    """Where the worker reads and writes, and how its kafka-python clients behave."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]; unset means 'start the local broker' for make run"
    )
    clickstream_topic: str = "offerstream.clickstream"
    decisions_topic: str = "offerstream.decisions"
    rewards_topic: str = "offerstream.rewards"
    dead_letter_topic: str = "offerstream.dead-letters"
    group_id: str = "offerstream-worker"
    client_id: str = "offerstream"
    partitions: int = Field(3, ge=1, description="partitions of topics that offerstream creates")
    max_poll_records: int = Field(500, ge=1)
    poll_timeout_ms: int = Field(100, ge=0)
    fetch_max_bytes: int = Field(52_428_800, ge=1024)
    linger_ms: int = Field(5, ge=0)
    retry_backoff_ms: int = Field(
        20,
        ge=1,
        description=(
            "the producer's wait before retrying a request; kafka-python waits this long before every retried "
            "transaction request, and a transaction begun right after the last one's commit is routinely retried "
            "(CONCURRENT_TRANSACTIONS while the broker writes the markers), so its default of 100 ms showed up "
            "in the decisions' latency; 20 ms is the Java client's wait for that retry"
        ),
    )
    batch_size: int = Field(65_536, ge=1024)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    max_request_size: int = Field(4_194_304, ge=1024, description="producer cap; dead letters carry input bytes")
    processing_guarantee: Literal["exactly-once", "at-least-once"] = Field(
        "exactly-once",
        description=(
            "exactly-once: each batch's outputs and offsets commit in one transaction (stream/kafka/transactions.py)"
        ),
    )
    instance_id: str | None = Field(
        None,
        description=(
            "this worker's stable identity across restarts (default: from the host name and state dir): its "
            "transactional id is GROUP-INSTANCE and, with static_membership, its group.instance.id"
        ),
    )
    static_membership: bool = Field(
        True, description="rejoin the group as the same member after a restart, without waiting for a rebalance"
    )
    transaction_timeout_ms: int = Field(
        60_000, ge=1000, description="the broker aborts a transaction left open this long (a crashed worker's)"
    )
    stall_timeout_s: float = Field(
        120.0,
        ge=0,
        description=(
            "no record and no progress for this long while there is input to read (behind the known end, or a "
            "fresh reader finds records from the worker's next offset) or the group join does not finish: the "
            "consumer is stuck (seen after a broker restart), so the worker rebuilds its clients from the "
            "checkpoint; 0 = off"
        ),
    )
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed", description="what the worker reads of transactional producers' messages"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certificates")
    ssl_certfile: str | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: str | None = Field(None, description="client certificate's private key")
    ssl_password: SecretStr | None = Field(None, description="password of the private key")
    ssl_check_hostname: bool = True

    def client_options(self) -> dict[str, Any]:
        """Options shared by every kafka-python client (secrets revealed only here)."""
        opts: dict[str, Any] = {
            "bootstrap_servers": (self.bootstrap_servers or "").split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_plain_username:
            opts["sasl_plain_username"] = self.sasl_plain_username
        if self.sasl_plain_password is not None:
            opts["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                opts[name] = getattr(self, name)
        if self.ssl_password is not None:
            opts["ssl_password"] = self.ssl_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            opts["ssl_check_hostname"] = self.ssl_check_hostname
        return opts


class ProcessingSettings(BaseModel):
    """What the processing core does with each event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_events: tuple[str, ...] = ("add_to_cart", "checkout_start")
    max_decisions_per_session: int = Field(1, ge=1)
    attribution_window_s: float = Field(1800.0, gt=0, description="a purchase this long after a decision counts")
    session_gap_s: float = Field(1800.0, gt=0, description="inactivity that starts a new session (no session_id)")
    session_ttl_s: float = Field(
        4 * 3600.0, gt=0, description="a session without session_end closes this long after its last event (event time)"
    )
    user_ttl_s: float = Field(
        180 * 86400.0, gt=0, description="a user with no event for this long (event time) is forgotten"
    )
    dedup_window_s: float = Field(
        600.0, ge=0, description="an event_id seen again within this much event time is a duplicate (0: off)"
    )
    partition_idle_records: int = Field(
        100_000,
        ge=1,
        description="a partition none of the last this many records came from stops holding sessions open",
    )
    margin: float = Field(0.30, gt=0, le=1, description="gross margin on revenue")
    value_at_stake: Literal["expected_order", "cart"] = Field(
        "expected_order",
        description=(
            "the order each offer's value at stake (margin × order − cost) is computed on: the order expected "
            "from those who bought under the offer with such a cart (learned, bandits/order_value.py), or the cart"
        ),
    )
    max_message_bytes: int = Field(65_536, ge=256, description="larger messages are dead letters")
    max_ts_skew_s: float = Field(
        366 * 86400.0,
        gt=0,
        description="allowed distance of ts from the record's broker time (or the watermark)",
    )
    ts_min: datetime = datetime(1995, 1, 1, tzinfo=UTC)
    ts_max: datetime = datetime(2100, 1, 1, tzinfo=UTC)
    offers: Catalogue = Field(default_factory=Catalogue)

    @field_validator("decision_events")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
        return value

    @field_validator("ts_min", "ts_max")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give bounds with a UTC offset")
        return value


PolicyName = Literal["linear_thompson", "linucb", "thompson", "uniform", "fixed"]
POLICY_NAMES: tuple[str, ...] = get_args(PolicyName)


class PolicySettings(BaseModel):
    """Which bandit policy decides, and its knobs (see ``bandits/``: each policy's docstring says what they do)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PolicyName = "linear_thompson"
    mc_samples: int = Field(1000, ge=10, le=1_000_000, description="Monte Carlo draws for TS propensities")
    propensity_floor: float = Field(0.01, ge=0, lt=1, description="no eligible offer is chosen less often")
    context: tuple[str, ...] = Field(
        DEFAULT_CONTEXT, min_length=1, description="linear policies' context terms (see bandits/context.py)"
    )
    lift_context: tuple[str, ...] = Field(
        DEFAULT_LIFT_CONTEXT,
        description="linear policies: terms on which offers' effects differ (coefficients per offer attribute)",
    )
    lift_by: tuple[str, ...] = Field(
        LIFT_BY,
        description=(
            "linear policies: offer attributes (context keys <attribute>:<offer>) the lift terms interact with, "
            "shared by the offers that have them; empty: a block of lift coefficients per offer"
        ),
    )
    prior_precision: float = Field(1.0, gt=0, description="linear policies: prior precision λ of the coefficients")
    noise_prior_shape: float = Field(
        2.0, gt=0, description="linear policies: inverse-gamma shape of the noise variance prior"
    )
    noise_prior_scale: float | None = Field(
        None,
        gt=0,
        description=(
            "linear policies: its scale (prior mean variance scale/(shape-1): one decision's); "
            "unset: sized for the target, 0.25 for purchase (0/1), 300 for profit"
        ),
    )
    lift_prior_precision: float = Field(
        1.0, gt=0, description="linear policies: prior precision of the offers' own (lift) coefficients"
    )
    prior_coefficients: dict[str, float] = Field(
        default_factory=lambda: dict(WARM_START),
        description="linear policies: prior mean of a context term's coefficient (warm start from the snapshot)",
    )
    value_key: str | None = Field(
        VALUE_KEY, description="linear policies: context key prefix of each offer's value at stake (None: model profit)"
    )
    forget_half_life: float | None = Field(
        20_000.0, gt=0, description="linear policies: rewards after which old evidence weighs half (None: never)"
    )
    target: Literal["purchase", "profit"] = Field(
        "purchase",
        description=(
            "linear policies: what the model is fitted to: whether the decision's session bought (0/1), or the "
            "profit (rows scaled by the value at stake); either way offers rank by P(buy) × value at stake"
        ),
    )
    exploration: float = Field(
        0.5, gt=0, description="linear TS: scale on the posterior spread it samples from (below 1 explores less)"
    )
    ucb_alpha: float = Field(1.5, ge=0, description="LinUCB: predictive standard deviations added to the mean")
    prior_mean: float = 0.0
    prior_strength: float = Field(1.0, gt=0, description="pseudo-observations behind the prior mean")
    prior_shape: float = Field(1.0, gt=0, description="inverse-gamma shape of the reward variance prior")
    prior_scale: float = Field(25.0, gt=0, description="inverse-gamma scale of the reward variance prior")
    fixed_offer: str = "none"
    eligibility: tuple[EligibilityRule, ...] = Field(
        (), description="rules removing offers from a request before the policy chooses (bandits/eligibility.py)"
    )

    @field_validator("context", "lift_context")
    @classmethod
    def _terms_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        ContextEncoder(value)  # raises ValueError naming the bad term
        return value

    @model_validator(mode="after")
    def _purchase_needs_values(self) -> PolicySettings:
        if self.target == "purchase" and self.value_key is None:
            raise ValueError("target 'purchase' ranks offers by P(buy) × value at stake: it needs a value_key")
        return self


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


class Settings(BaseSettings):
    """Everything a worker, replay or simulator run needs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    seed: int = Field(0, ge=0, description="root of every random choice")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    state_dir: Path = Path(".run/state")
    state_key: SecretStr | None = Field(
        None, description="HMAC key signing checkpoints (default: a key file in state_dir)"
    )
    checkpoint_every_records: int = Field(
        20_000, ge=1, description="records between checkpoints of the worker's state (a restart replays fewer)"
    )
    metrics_port: int | None = Field(
        9464, ge=0, le=65535, description="the worker's /metrics and /healthz port (0: any free port; unset: off)"
    )
    metrics_host: str = Field("0.0.0.0", description="address the metrics endpoint listens on")
    health_stall_s: float = Field(60.0, gt=0, description="/healthz fails when the worker's loop stalls this long")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text", description="text lines, or one JSON object per line (time, level, logger, message, topic/offset)"
    )

    @model_validator(mode="after")
    def _policy_fits_catalogue(self) -> Settings:
        if self.policy.name == "fixed" and self.policy.fixed_offer not in self.processing.offers.names:
            raise ValueError(
                f"policy.fixed_offer {self.policy.fixed_offer!r} is not in the catalogue {self.processing.offers.names}"
            )
        Eligibility(self.policy.eligibility, self.processing.offers)  # raises ValueError naming a bad rule
        return self


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_settings(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build and validate the settings; raises :class:`ConfigError` with every problem listed.

    ``overrides`` are nested dicts from command-line flags (highest precedence); ``env`` defaults to
    ``os.environ``.
    """
    environ = dict(os.environ if env is None else env)
    if "KAFKA_BOOTSTRAP_SERVERS" in environ:
        environ.setdefault(f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS", environ["KAFKA_BOOTSTRAP_SERVERS"])
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file not found: {config_file}")

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [
                init_settings,
                _MappingEnvSource(settings_cls, environ),
            ]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return tuple(sources)

    try:
        loaded = _Loaded(**_deep_merge({}, overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    return Settings.model_construct(**{name: getattr(loaded, name) for name in Settings.model_fields})


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of the process environment."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {k.lower(): v for k, v in environ.items()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-able data with secrets masked, for logs and ``offerstream config``."""
    return settings.model_dump(mode="json")
