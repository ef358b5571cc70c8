"""What every command shares: its settings (file < env < flags), common options, option callbacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from bandits.settings import POLICY_NAMES
from stream.app.settings import Settings, load_settings
from stream.core import logs
from stream.core.errors import ConfigError


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    """Merge the command's flags (only those given) over file and environment."""
    overrides: dict[str, Any] = {}
    mapping = {
        "seed": ("seed",),
        "bootstrap_servers": ("kafka", "bootstrap_servers"),
        "group_id": ("kafka", "group_id"),
        "policy": ("policy", "name"),
        "log_level": ("log_level",),
        "log_format": ("log_format",),
        "state_dir": ("state_dir",),
        "archive": ("models", "archive"),
        "registry": ("models", "registry"),
    }
    for name, value in flags.items():
        if value is None or name not in mapping:
            continue
        *parents, leaf = mapping[name]
        node = overrides
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        settings = load_settings(ctx.obj.get("config"), overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(settings.log_level, settings.log_format)
    return settings


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command shares."""
    fn = click.option("--seed", type=int, default=None, help="Root of every random choice (settings: seed).")(fn)
    fn = click.option(
        "--policy", type=click.Choice(POLICY_NAMES), default=None, help="Bandit policy (settings: policy.name)."
    )(fn)
    fn = click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
        default=None,
        help="Log level.",
    )(fn)
    fn = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=None,
        help="Log lines as text or as JSON objects (settings: log_format).",
    )(fn)
    return fn


def kafka_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--bootstrap-servers",
        default=None,
        help="Kafka host:port list (or KAFKA_BOOTSTRAP_SERVERS / OFFERSTREAM_KAFKA__BOOTSTRAP_SERVERS).",
    )(fn)
    fn = click.option("--group-id", default=None, help="Consumer group of the workers.")(fn)
    return fn


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where the archive is written and where promoted snapshots are read from."""
    fn = click.option(
        "--registry",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Model registry: score with its promoted snapshot (settings: models.registry).",
    )(fn)
    fn = click.option(
        "--archive",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Append every valid event and decision to this day-partitioned archive (settings: models.archive).",
    )(fn)
    return fn


def need_broker(settings: Settings) -> None:
    if not settings.kafka.bootstrap_servers:
        raise click.ClickException(
            "no Kafka broker configured: set KAFKA_BOOTSTRAP_SERVERS (or --bootstrap-servers), "
            "or use `make run`, which starts a local broker"
        )


def comma_choice(allowed: Sequence[str]) -> Callable[[click.Context, click.Parameter, str], tuple[str, ...]]:
    """A click callback: the names in order, repeats dropped; an unknown or empty list is a usage error.

    >>> parse = comma_choice(("a", "b"))
    >>> parse(None, None, "b, a,b")
    ('b', 'a')
    """

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
        bad = [n for n in names if n not in allowed]
        if not names or bad:
            raise click.BadParameter(f"choose from {','.join(allowed)} (got {value!r})", ctx=ctx, param=param)
        return names

    return parse
