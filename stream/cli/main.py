"""The ``offerstream`` command line: the group, ``config``, and the commands of each module of this package.

Every command reads the one settings object (file < env < flags) through :func:`stream.cli.options.settings_from`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from stream.app.settings import describe
from stream.cli import (
    file_commands,
    import_command,
    lab_command,
    ope_command,
    retrain_command,
    topic_commands,
    worker_commands,
)
from stream.cli.options import common, kafka_options, settings_from


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (lowest precedence after defaults; then OFFERSTREAM_* env, then flags).",
)
@click.version_option(package_name="offerstream")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """offerstream: clickstream in, offer decisions out, with models kept fresh.

    \b
    Settings come from one object: defaults < --config FILE < environment (OFFERSTREAM_SECTION__KEY,
    e.g. OFFERSTREAM_PROCESSING__MARGIN=0.25; KAFKA_BOOTSTRAP_SERVERS too) < command-line flags.
    `offerstream config` prints the effective settings with secrets masked.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@click.command()
@common
@kafka_options
@click.pass_context
def config(ctx: click.Context, **flags: Any) -> None:
    """Print the effective settings as JSON, secrets masked."""
    settings = settings_from(ctx, **flags)
    click.echo(orjson.dumps(describe(settings), option=orjson.OPT_INDENT_2).decode())


for command in (
    worker_commands.run,
    worker_commands.demo,
    worker_commands.simulate_live,
    file_commands.replay,
    file_commands.simulate,
    topic_commands.record,
    topic_commands.produce,
    topic_commands.topics,
    import_command.import_,
    retrain_command.retrain,
    ope_command.ope,
    lab_command.backtest,
    config,
):
    main.add_command(command)
