"""A comma-separated list of names from a fixed set, as commands take it (``--strategies``, ``--estimators``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click


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
