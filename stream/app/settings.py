"""The one settings object, composed of every family's own settings (each declared beside its code).

Precedence: defaults < TOML file (``--config``) < environment < command-line flags.

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
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bandits.eligibility import Eligibility
from bandits.settings import PolicySettings
from models.settings import ModelSettings
from stream.core.errors import ConfigError
from stream.engine.settings import ProcessingSettings
from stream.kafka.settings import KafkaSettings

ENV_PREFIX = "OFFERSTREAM_"


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
    state_dir: Path = Field(Path(".run/state"), description="where the worker keeps its checkpoints and their key")
    state_key: SecretStr | None = Field(
        None, description="HMAC key signing checkpoints (default: a key file in state_dir)"
    )
    state_store: Literal["memory", "rocksdb"] = Field(
        "memory",
        description=(
            "where the worker keeps its partitions' users: memory, or rocksdb (on disk under STATE_DIR/partitions, "
            "for more users than memory holds; needs the rocksdb extra). With rocksdb the checkpoint holds the "
            "learners only and the partitions always come back from the state changelog"
        ),
    )
    checkpoint_every_records: int = Field(
        20_000, ge=1, description="records between checkpoints of the worker's state (a restart replays fewer)"
    )
    metrics_port: int | None = Field(
        9464, ge=0, le=65535, description="the worker's /metrics and /healthz port (0: any free port; unset: off)"
    )
    metrics_host: str = Field("0.0.0.0", description="address the metrics endpoint listens on")
    health_stall_s: float = Field(60.0, gt=0, description="/healthz fails when the worker's loop stalls this long")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="lowest level of the log lines written"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text lines, or one JSON object per line (time, level, logger, message, topic/offset)"
    )

    @model_validator(mode="after")
    def _policy_fits_catalogue(self) -> Settings:
        if self.policy.name == "fixed" and self.policy.fixed_offer not in self.processing.offers.names:
            raise ValueError(
                f"policy.fixed_offer {self.policy.fixed_offer!r} is not in the catalogue {self.processing.offers.names}"
            )
        conservative = self.policy.name == "linear_thompson" and self.policy.conservative
        if conservative and self.policy.baseline_offer not in self.processing.offers.names:
            raise ValueError(
                f"policy.baseline_offer {self.policy.baseline_offer!r} is not in the catalogue "
                f"{self.processing.offers.names}"
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
