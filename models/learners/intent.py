"""P(this session ends in a purchase), learned online at session close.

River's ``StandardScaler`` then ``LogisticRegression``. The optimiser is plain SGD with constant learning
rates: on standardised features a constant step converges in a few thousand sessions and keeps forgetting old
ones at a steady rate, which is what tracking a drifting shop needs (a decaying rate would freeze the model);
it also carries no optimiser state into the snapshot. The weights learn slowly (0.005: at 0.02 each session's
probability was noisy enough that its log loss was worse than a constant's on the simulator), the intercept
fast (0.02), so the overall purchase rate follows a shift within hours while the ranking stays steady.
A small L2 penalty (1e-4) keeps weights of rarely present features from wandering. The intercept starts at
the logit of ``base_rate``, the prediction before any learning: a neutral 0.5 by default; pass the population's
rate (about 0.03 if every session is learned) so the first predictions and losses are calibrated. The drift
monitor sees each session's log loss (probability clipped to [0.001, 0.999], divided by its cap) of the
prediction made before learning it.

>>> import random
>>> rng = random.Random(0)
>>> model = IntentLearner(seed=0)
>>> model.predict_one({"adds": 1.0})
0.5
>>> for _ in range(3000):
...     adds = float(rng.randint(0, 3))
...     model.learn_one({"adds": adds, "mobile": float(rng.random() < 0.7)}, rng.random() < 0.1 + 0.25 * adds)
>>> model.predict_one({"adds": 3.0}) > 0.6 > 0.2 > model.predict_one({"adds": 0.0})
True
>>> model.version
'intent@3000'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from river import linear_model, optim, preprocessing

from models.learners.base import (
    RiverLearner,
    clean,
    log_loss,
    logit,
    scaled,
)
from models.learners.calibration import OnlinePlatt
from models.learners.lessons import ScalerLesson, WeightsLesson


class IntentLearner(RiverLearner):
    """Online logistic regression on standardised session features; ``predict_one`` is a probability.

    Hyperparameters are public and named like the constructor's arguments; the learned state is private.
    ``seed`` is kept for the registry's uniform signature: nothing here is random.
    """

    name = "intent"

    def __init__(
        self,
        seed: int = 0,
        base_rate: float = 0.5,
        learning_rate: float = 0.005,
        intercept_lr: float = 0.02,
        l2: float = 1e-4,
        drift_delta: float = 0.002,
        calibrate: bool = True,
    ) -> None:
        if not 0.0 < base_rate < 1.0:
            raise ValueError(f"base_rate must be in (0, 1), got {base_rate}")
        self.seed = seed
        self.base_rate = base_rate
        self.learning_rate = learning_rate
        self.intercept_lr = intercept_lr
        self.l2 = l2
        self.drift_delta = drift_delta
        self._scaler = preprocessing.StandardScaler()
        self._model = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate),
            l2=l2,
            intercept_init=logit(base_rate),
            intercept_lr=intercept_lr,
        )
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
        """Learn that the session with features ``x`` ended in a purchase (``y`` truthy) or not; ``weight`` scales
        its SGD step (1 for plain learning)."""
        if y is None:
            raise ValueError("IntentLearner needs a label: did the session end in a purchase?")
        label = bool(y)
        x = clean(x)
        before = self._proba(x)
        if watch:
            self._drift.update(log_loss(before, label), ts_ms, bias=float(label) - self._served(before))
        if self._calibration is not None:
            self._calibration.learn(before, label, weight)
        self._scaler.learn_one(x)
        self._scaler_lesson.learn(x)
        self._model.learn_one(scaled(self._scaler, x), label, w=weight)
        self._n += 1

    def predict_one(self, x: Mapping[str, float]) -> float:
        """Probability that the session ends in a purchase, in (0, 1), Platt-scaled once enough is learned."""
        p = self._proba(clean(x))
        return self._served(p)

    def score_one(self, x: Mapping[str, float]) -> float:
        """The logistic regression's own probability, before calibration (what the policy's context takes)."""
        return self._proba(clean(x))

    def _proba(self, x: dict[str, float]) -> float:
        return float(self._model.predict_proba_one(scaled(self._scaler, x))[True])

    def _reset_lessons(self) -> None:
        super()._reset_lessons()
        self._scaler_lesson = ScalerLesson()
        self._weights_lesson = WeightsLesson(self._model)

    def _lesson_parts(self) -> dict[str, Any]:
        return {"scaler": self._scaler_lesson.take(), "model": self._weights_lesson.take(self._model)}

    def _whole_parts(self) -> dict[str, Any]:
        return {
            "scaler": ScalerLesson.whole(self._scaler),
            "model": WeightsLesson.whole(self._model, logit(self.base_rate)),
        }

    def _fold_parts(self, lesson: Mapping[str, Any]) -> None:
        if lesson["scaler"]:
            ScalerLesson.fold(self._scaler, lesson["scaler"])
        self._weights_lesson.fold(self._model, lesson["model"])

    def _learned(self) -> tuple[Any, ...]:
        return (self._scaler, self._model)

    def _set_learned(self, learned: tuple[Any, ...]) -> None:
        self._scaler, self._model = learned

    def _params(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "base_rate": self.base_rate,
            "learning_rate": self.learning_rate,
            "intercept_lr": self.intercept_lr,
            "l2": self.l2,
            "drift_delta": self.drift_delta,
        }
