"""``offerstream import``: backfill the archive from a warehouse export."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
import orjson

from stream.cli.options import common, settings_from

log = logging.getLogger(__name__)


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """Repeated FIELD=VALUE options as a dict; a field given twice is an error."""
    pairs: dict[str, str] = {}
    for item in values:
        field, sep, value = item.partition("=")
        field, value = field.strip(), value.strip()
        if not sep or not field or not value:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", ctx=ctx, param=param)
        if field in pairs:
            raise click.BadParameter(f"{field} given twice ({pairs[field]!r} and {value!r})", ctx=ctx, param=param)
        pairs[field] = value
    return pairs


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common
@click.option(
    "--archive",
    "archive_root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive root; events go to DIR/events/date=YYYY-MM-DD/part-<writer-id>.jsonl.gz.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    callback=_pairs,
    help="Contract field <- source column (repeatable). ts, user_id and type must be mapped or --set.",
)
@click.option(
    "--set",
    "constants",
    multiple=True,
    metavar="FIELD=VALUE",
    callback=_pairs,
    help="Contract field set to VALUE on every row (repeatable), e.g. --set type=purchase.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "tsv", "parquet"]),
    default="auto",
    show_default=True,
    help="auto: .parquet/.pq or PAR1 bytes is Parquet, .tsv is TSV, else CSV (a .gz suffix is ignored).",
)
@click.option(
    "--ts-format",
    default=None,
    help="strptime format of ts text, e.g. %Y%m%d. Default: ISO-8601, or an integer epoch (see --ts-unit).",
)
@click.option("--tz", default="UTC", show_default=True, help="IANA zone of timestamps without an offset.")
@click.option(
    "--ts-unit",
    type=click.Choice(["auto", "s", "ms"]),
    default="auto",
    show_default=True,
    help="Unit of epoch numbers; auto: below 10^11 is seconds, else milliseconds.",
)
@click.option(
    "--delimiter",
    default=None,
    help="Text field separator: one character, 'tab' or 'whitespace' (runs of blanks). Default: ',' (tab for TSV).",
)
@click.option("--no-header", is_flag=True, help="The text file has no header row (give --columns).")
@click.option(
    "--columns",
    default=None,
    metavar="A,B,C",
    help="Comma-separated column names of a text file, in order; needed with --no-header (else they replace "
    "the header's).",
)
@click.option("--encoding", default="utf-8-sig", show_default=True, help="Text encoding of a text file.")
@click.option("--writer-id", default="import", show_default=True, help="Part file name: part-<writer-id>.jsonl.gz.")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write refused rows here (JSON lines with row, line, reason, detail, raw; gzip if .gz).",
)
@click.option(
    "--id-prefix",
    default=None,
    help="When event_id is not mapped, ids are <prefix>-<row number> (default prefix: the file's stem).",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Rows between archive flushes (and Parquet read batch size).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stats as JSON on stdout (summary to stderr).")
@click.pass_context
def import_(
    ctx: click.Context,
    path: Path,
    archive_root: Path,
    mapping: dict[str, str],
    constants: dict[str, str],
    fmt: str,
    ts_format: str | None,
    tz: str,
    ts_unit: str,
    delimiter: str | None,
    no_header: bool,
    columns: str | None,
    encoding: str,
    writer_id: str,
    rejects: Path | None,
    id_prefix: str | None,
    batch_rows: int,
    as_json: bool,
    **flags: Any,
) -> None:
    """Backfill the archive from a warehouse export: CSV, TSV, whitespace-separated text or Parquet.

    Each row becomes one event. --map FIELD=COLUMN names the source column of a contract field
    (event_id, ts, user_id, type, session_id, product_id, category, price, quantity, cart_value, revenue,
    device, referrer, decision_id); --set FIELD=VALUE gives a field the same value on every row. ts, user_id and type
    are required. Without an event_id mapping, ids are <file stem or --id-prefix>-<row>, so importing the
    same file again adds nothing new to what the archive's readers return. Every row goes through the
    event contract; a refused row is counted by reason and, with --rejects, written there.

    \b
    Example: the CDNOW purchase log (customer id, date YYYYMMDD, number of CDs,
    dollar value; whitespace-separated, no header):
      offerstream import CDNOW_master.txt --archive data/archive \\
        --no-header --delimiter whitespace --columns customer,date,cds,dollars \\
        --map user_id=customer --map ts=date --ts-format %Y%m%d \\
        --map quantity=cds --map revenue=dollars --set type=purchase

    Parquet needs pyarrow: pip install 'offerstream[parquet]'.
    """
    from models.history.importer import FIELDS, import_table
    from stream.core.contract import Event
    from stream.core.errors import OfferstreamError

    settings_from(ctx, **flags)
    unknown = sorted((set(mapping) | set(constants)) - FIELDS)
    if unknown:
        raise click.BadParameter(
            f"not contract fields: {', '.join(unknown)}; fields are {', '.join(sorted(FIELDS))}",
            param_hint="--map/--set",
        )
    required = {f.alias or name for name, f in Event.model_fields.items() if f.is_required()} - {"event_id"}
    missing = sorted(required - set(mapping) - set(constants))
    if missing:
        raise click.UsageError(
            f"required field(s) {', '.join(missing)} neither mapped nor set: "
            f"give --map {missing[0]}=COLUMN or --set {missing[0]}=VALUE"
        )
    if ts_format is not None and "%" not in ts_format:
        raise click.BadParameter(
            f"{ts_format!r} is not a strptime format (e.g. %Y%m%d); for epoch numbers or ISO-8601 "
            "leave --ts-format out (and use --ts-unit)",
            param_hint="--ts-format",
        )
    names = [c.strip() for c in columns.split(",")] if columns else None
    if names is not None and not all(names):
        raise click.BadParameter(f"empty name in {columns!r}", param_hint="--columns")
    try:
        stats = import_table(
            path,
            archive_root,
            mapping,
            fmt=None if fmt == "auto" else fmt,
            constants=constants,
            ts_format=ts_format,
            tz=tz,
            ts_unit=ts_unit,
            delimiter=delimiter,
            header=not no_header,
            columns=names,
            encoding=encoding,
            writer_id=writer_id,
            rejects=rejects,
            id_prefix=id_prefix,
            batch_rows=batch_rows,
        )
    except (OfferstreamError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        if type(exc).__module__.startswith("pyarrow"):  # a file that is not Parquet after all
            raise click.ClickException(f"{path}: cannot read as Parquet: {exc}") from None
        raise
    summary = f"imported {stats['imported']} of {stats['rows']} rows from {path} into {archive_root}"
    if stats["imported"]:
        summary += f", {stats['first_day']} to {stats['last_day']} ({stats['days']} days)"
    if stats["rejected_total"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in stats["rejected"].items())
        summary += f"; rejected {stats['rejected_total']} ({reasons})"
        summary += f", written to {rejects}" if rejects is not None else "; --rejects PATH to see them"
    click.echo(summary, err=as_json)
    if as_json:
        click.echo(orjson.dumps(stats, option=orjson.OPT_SORT_KEYS).decode())
