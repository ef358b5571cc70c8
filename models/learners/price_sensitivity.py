"""How much an offer raises this shopper's purchase probability, learned from sessions that received offers.

The model is a logistic regression of the purchase on the standardised context ``z``, the offer terms and their
interactions with the context::

    logit P(buy | x, offer) = b + w·z + s·(a + u·z) + f·(c + v·z)

where ``s`` is the discount share in units of 10 % (``offer_share / 0.10``) and ``f`` is 1 when a flat-fee
offer (free shipping) was shown. The interactions let the lift depend on the shopper; the discount's effect is
linear in the share on the logit scale, so the three discount levels share their strength. The lift of an offer
is ``P(buy | x, offer) − P(buy | x, none)``, which can be negative. A logistic outcome model rather than a
two-model or transformed-outcome estimator because purchases are rare and the offer arms small: one model
pools what all arms say about the baseline ``b + w·z``.

The caller passes the shown offer in ``x`` under the reserved keys ``"offer_share"`` (0.05/0.10/0.15, 0 for
none or free shipping) and ``"offer_flat"`` (1.0 for free shipping, else 0.0); missing keys mean no offer.
``weight`` is the inverse of the logged propensity. It is capped at ``max_weight`` (20: a 1 % exploration
floor would otherwise give one session the pull of a hundred) and then divided by the running mean of the
capped weights, so the SGD step has the same size whatever the logging policy (self-normalised importance
weighting: only the weights' ratios matter). Optimiser as in :mod:`models.learners.intent` (SGD at a constant
rate, small L2) but at half its rate, 0.01: lifts are small differences between small arms, and on synthetic
logs a 0.02 rate left lift errors of ±0.04 (RMS) however long it learned, 0.01 about ±0.026 after 20,000
sessions, at the price of a slower start (±0.055 after 5,000). Offer terms that are zero are left out of the
example, so L2 does not shrink them on sessions without that offer. The drift monitor sees the (normalised,
clipped) log loss of the purchase prediction made before learning each session.

>>> import random
>>> rng = random.Random(1)
>>> model = PriceSensitivityLearner(seed=0)
>>> for _ in range(20_000):
...     bargain = float(rng.random() < 0.5)
...     share = rng.choice([0.0, 0.05, 0.10, 0.15])
...     p = 0.2 + 2.0 * share * bargain
...     model.learn_one({"bargain": bargain, "offer_share": share}, rng.random() < p, weight=4.0)
>>> round(model.predict_one({"bargain": 1.0}), 2), round(model.predict_one({"bargain": 0.0}), 2)  # truth: 0.2, 0
(0.19, 0.02)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from river import linear_model, optim, preprocessing, stats

from models.learners.base import (
    RiverLearner,
    clean,
    log_loss,
    logit,
    scaled,
)
from models.learners.calibration import OnlinePlatt
from models.learners.lessons import MeanLesson, ScalerLesson, WeightsLesson

OFFER_SHARE = "offer_share"
OFFER_FLAT = "offer_flat"
RESERVED = frozenset({OFFER_SHARE, OFFER_FLAT})
_SHARE_UNIT = 0.10  # the discount term's unit: a 10 % discount is s = 1


class PriceSensitivityLearner(RiverLearner):
    """Uplift of an offer on the purchase probability; ``predict_one`` is the lift of a 10 % discount.

    Hyperparameters are public and named like the constructor's arguments; the learned state is private.
    ``seed`` is kept for the registry's uniform signature: nothing here is random.
    """

    name = "price_sensitivity"

    def __init__(
        self,
        seed: int = 0,
        base_rate: float = 0.5,
        learning_rate: float = 0.01,
        l2: float = 1e-4,
        max_weight: float = 20.0,
        drift_delta: float = 0.002,
        calibrate: bool = True,
    ) -> None:
        if not 0.0 < base_rate < 1.0:
            raise ValueError(f"base_rate must be in (0, 1), got {base_rate}")
        self.seed = seed
        self.base_rate = base_rate
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_weight = max_weight
        self.drift_delta = drift_delta
        self._scaler = preprocessing.StandardScaler()
        self._model = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate),
            l2=l2,
            intercept_init=logit(base_rate),
            intercept_lr=learning_rate,
        )
        self._mean_weight = stats.Mean()
        self._calibration = OnlinePlatt() if calibrate else None
        self._start(drift_delta)

    def learn_one(
        self,
        x: Mapping[str, float],
        y: float | bool | None,
        *,
        weight: float = 1.0,
        ts_ms: int | None = None,
        watch: bool = True,
    ) -> None:
        """Learn whether the session with context and shown offer ``x`` bought; ``weight`` = 1 / propensity."""
        if y is None:
            raise ValueError("PriceSensitivityLearner needs a label: did the session buy?")
        label = bool(y)
        context, share, flat = _split(x)
        before = self._raw_purchase(context, share, flat)
        if watch:
            self._drift.update(log_loss(before, label), ts_ms, bias=float(label) - self._served(before))
        self._scaler.learn_one(context)
        self._scaler_lesson.learn(context)
        capped = min(max(float(weight), 0.0), self.max_weight)
        self._mean_weight.update(capped)
        self._mean_lesson.learn(capped)
        mean = self._mean_weight.get()
        w = capped / mean if mean > 0.0 else 1.0
        if self._calibration is not None:
            self._calibration.learn(before, label, w)
        self._model.learn_one(_design(scaled(self._scaler, context), share, flat), label, w=w)
        self._n += 1

    def predict_one(self, x: Mapping[str, float]) -> float:
        """Lift in purchase probability of a 10 % discount over no offer for this context (offer keys ignored)."""
        return self.predict_lift(x, offer_share=0.10, offer_flat=0.0)

    def score_one(self, x: Mapping[str, float]) -> float:
        """:meth:`predict_one` from the logistic regression's own probabilities, before calibration (what the
        policy's context takes)."""
        context, _, _ = _split(x)
        return self._raw_purchase(context, _SHARE_UNIT, 0.0) - self._raw_purchase(context, 0.0, 0.0)

    def predict_lift(self, x: Mapping[str, float], offer_share: float, offer_flat: float) -> float:
        """P(buy | x, this offer) − P(buy | x, no offer); offer keys in ``x`` are ignored."""
        context, _, _ = _split(x)
        return self._purchase(context, offer_share, offer_flat) - self._purchase(context, 0.0, 0.0)

    def predict_purchase(self, x: Mapping[str, float], offer_share: float = 0.0, offer_flat: float = 0.0) -> float:
        """P(buy | x, this offer); offer keys in ``x`` are ignored."""
        context, _, _ = _split(x)
        return self._purchase(context, offer_share, offer_flat)

    def _purchase(self, context: dict[str, float], share: float, flat: float) -> float:
        p = self._raw_purchase(context, share, flat)
        return self._served(p)

    def _raw_purchase(self, context: dict[str, float], share: float, flat: float) -> float:
        z = _design(scaled(self._scaler, context), share, flat)
        return float(self._model.predict_proba_one(z)[True])

    def _reset_lessons(self) -> None:
        super()._reset_lessons()
        self._scaler_lesson = ScalerLesson()
        self._mean_lesson = MeanLesson()
        self._weights_lesson = WeightsLesson(self._model)

    def _lesson_parts(self) -> dict[str, Any]:
        return {
            "scaler": self._scaler_lesson.take(),
            "mean_weight": self._mean_lesson.take(),
            "model": self._weights_lesson.take(self._model),
        }

    def _whole_parts(self) -> dict[str, Any]:
        return {
            "scaler": ScalerLesson.whole(self._scaler),
            "mean_weight": MeanLesson.whole(self._mean_weight),
            "model": WeightsLesson.whole(self._model, logit(self.base_rate)),
        }

    def _fold_parts(self, lesson: Mapping[str, Any]) -> None:
        if lesson["scaler"]:
            ScalerLesson.fold(self._scaler, lesson["scaler"])
        if lesson["mean_weight"]:
            MeanLesson.fold(self._mean_weight, lesson["mean_weight"])
        self._weights_lesson.fold(self._model, lesson["model"])

    def _learned(self) -> tuple[Any, ...]:
        return (self._scaler, self._model, self._mean_weight)

    def _set_learned(self, learned: tuple[Any, ...]) -> None:
        self._scaler, self._model, self._mean_weight = learned

    def _params(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "base_rate": self.base_rate,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "max_weight": self.max_weight,
            "drift_delta": self.drift_delta,
        }


def _split(x: Mapping[str, float]) -> tuple[dict[str, float], float, float]:
    """The context features and the shown offer's (share, flat) from the reserved keys (missing: no offer)."""
    features = clean(x)
    share = features.pop(OFFER_SHARE, 0.0)
    flat = features.pop(OFFER_FLAT, 0.0)
    return features, share, flat


def _design(z: dict[str, float], share: float, flat: float) -> dict[str, float]:
    """Model inputs: context main effects, and each offer term with its context interactions when it is non-zero."""
    row = {f"x:{k}": v for k, v in z.items()}
    s = share / _SHARE_UNIT
    if s:
        row["offer:share"] = s
        row.update({f"share*{k}": s * v for k, v in z.items()})
    if flat:
        row["offer:flat"] = flat
        row.update({f"flat*{k}": flat * v for k, v in z.items()})
    return row
