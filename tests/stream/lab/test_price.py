"""The lab's price model: rows from logged decisions, and the value of the offers a model would choose."""

from __future__ import annotations

import functools

import numpy as np
import orjson
import pytest

from bandits.offers import default_catalogue
from models.behaviour.features import FEATURE_NAMES
from stream.app.settings import load_settings
from stream.cli.lab_command import _simulated
from stream.lab.backtest import LabConfig, decision_value, ope_value, run_backtest
from stream.lab.rows import RowCollector


@functools.cache
def logged():
    collector = RowCollector(load_settings(env={}).processing, decisions={})
    _simulated("stationary", 4, 2500, 6, collector)
    return collector.decisions, collector.finish()


def test_every_session_whose_first_decision_was_logged_gives_a_price_row_with_its_offer():
    decisions, rows = logged()
    price = rows.price
    assert price is not None and price.kind == "price" and 0 < price.n <= rows.n
    assert price.n == rows.n, "in closed loop every decision point is answered, so every session has its row"
    by_session = {sid: i for i, sid in enumerate(rows.session_ids)}
    for j, sid in enumerate(price.session_ids):
        i = by_session[sid]
        np.testing.assert_array_equal(price.X[j, : len(FEATURE_NAMES)], rows.X[i])
        assert price.y[j] == rows.y[i] and price.decision_ms[j] == rows.decision_ms[i]
    terms = {(round(float(s), 2), float(f)) for s, f in price.X[:, len(FEATURE_NAMES) :]}
    assert terms == {(0.0, 0.0), (0.05, 0.0), (0.1, 0.0), (0.15, 0.0), (0.0, 1.0)}
    assert np.all(price.weights == 5.0)
    assert price.truth is not None and all(set(t) == {o.name for o in default_catalogue()} for t in price.truth)
    assert len(decisions) >= price.n


class _Fixed:
    """A 'model' whose purchase probability depends only on the offer terms."""

    def __init__(self, by_offer: dict[tuple[float, float], float]) -> None:
        self.by_offer = by_offer

    def score(self, X):
        return np.array([self.by_offer[(round(float(x[-2]), 2), float(x[-1]))] for x in X])


def test_decision_value_is_the_simulators_profit_of_the_offer_the_model_values_most():
    _, rows = logged()
    price = rows.price
    idx = np.arange(min(50, price.n))
    config = LabConfig()
    # equal purchase probability under every offer: showing nothing keeps the most at stake, so it is chosen
    flat = _Fixed({(0.0, 0.0): 0.3, (0.05, 0.0): 0.3, (0.1, 0.0): 0.3, (0.15, 0.0): 0.3, (0.0, 1.0): 0.3})
    value = decision_value(flat, price, idx, config)
    assert value["profit"] == pytest.approx(value["none_profit"], abs=1e-3)
    assert value["oracle_profit"] == pytest.approx(sum(max(price.truth[i].values()) for i in idx), abs=1e-3)
    # a model that thinks only free shipping sells chooses it wherever the cart leaves margin above the fee
    shipping = _Fixed({(0.0, 0.0): 0.0, (0.05, 0.0): 0.0, (0.1, 0.0): 0.0, (0.15, 0.0): 0.0, (0.0, 1.0): 0.9})
    cart = np.nan_to_num(price.X[idx, FEATURE_NAMES.index("cart_value")])
    fee = next(o.flat_fee for o in config.offers if o.flat_fee > 0)
    expected = sum(
        price.truth[i]["free_shipping"] if 0.3 * c - fee > 0 else price.truth[i]["none"]
        for i, c in zip(idx, cart, strict=True)
    )
    assert decision_value(shipping, price, idx, config)["profit"] == pytest.approx(expected, abs=1e-3)


def test_the_lab_compares_price_models_and_their_decision_value_with_intervals():
    _, rows = logged()
    result = run_backtest(rows.price, LabConfig(seed=6, strategies=("full", "online")))
    summaries = {n: s["summary"] for n, s in result["strategies"].items()}
    value = result["comparison"]["decision_value"]
    assert value["best"] == max(summaries, key=lambda n: summaries[n]["profit_fraction"])
    other = next(n for n in summaries if n != value["best"])
    d = value["versus_best"][other]
    assert d["lo95"] <= d["mean"] <= d["hi95"]
    for s in result["strategies"].values():
        days = [x for x in s["daily"] if x["day"] in {y["day"] for y in s["daily"] if y["auc"] is not None}]
        assert all(x["profit"] <= x["oracle_profit"] + 1e-6 for x in days if x["profit"] is not None)
        assert 0.0 < s["summary"]["profit_fraction"] <= 1.0
    assert f"Daily share of the oracle against {value['best']}'s (95% CI)" in result["recommendation"]


def test_on_an_archive_with_logged_decisions_the_price_models_are_valued_off_policy(tmp_path):
    from click.testing import CliRunner

    from bench.retrain import generate_archive
    from stream.cli import main

    archive = tmp_path / "archive"
    generate_archive(archive, days=5, users=1500, seed=4)  # uniform logging policy, propensity 1/5
    out = tmp_path / "lab"
    result = CliRunner().invoke(
        main, ["backtest", "--archive", str(archive), "--strategies", "full,online", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads((out / "results.json").read_bytes())
    price = data["price"]
    assert price["source"]["rows"] > 0
    for s in price["strategies"].values():
        m = s["summary"]
        lo, hi = m["ope_value_ci"]
        assert lo <= m["ope_value"] <= hi and m["logged_value"] is not None
    assert "Off-policy value of each price model's choices" in price["recommendation"]
    assert (out / "plots" / "ope_value.svg").is_file()
    for name, s in price["strategies"].items():  # the contract's daily "ope_value" is the day's SNIPW estimate
        parts = {d["day"]: d for d in s["daily"] if d.get("ope_num") is not None and d["ope_den"]}
        days = [d for d in data["strategies"][name]["daily"] if d["day"] in parts]
        assert days and all(
            d["ope_value"] == round(parts[d["day"]]["ope_num"] / parts[d["day"]]["ope_den"], 4) for d in days
        )


def test_the_off_policy_parts_count_only_decisions_where_the_policy_agrees_with_the_log():
    _, rows = logged()
    price = rows.price
    idx = np.arange(price.n)
    shipping = _Fixed({(0.0, 0.0): 0.0, (0.05, 0.0): 0.0, (0.1, 0.0): 0.0, (0.15, 0.0): 0.0, (0.0, 1.0): 0.9})
    config = LabConfig()
    parts = ope_value(shipping, price, idx, config)
    cart = np.nan_to_num(price.X[:, FEATURE_NAMES.index("cart_value")])
    fee = next(o.flat_fee for o in config.offers if o.flat_fee > 0)
    shown_fs = price.X[:, -1] == 1.0
    chose_fs = 0.3 * cart - fee > 0
    shown_none = (price.X[:, -1] == 0.0) & (price.X[:, -2] == 0.0)
    agree = (shown_fs & chose_fs) | (shown_none & ~chose_fs)
    reward = np.where(shown_fs, price.y * (0.3 * cart - fee), price.y * 0.3 * cart)
    assert parts["ope_den"] == pytest.approx(5.0 * agree.sum(), abs=1e-3)
    assert parts["ope_num"] == pytest.approx(5.0 * reward[agree].sum(), abs=1e-2)
