"""The parts of a River learner's lesson (:mod:`stream.core.lessons`): each kept beside the River object it shares.

* :class:`ScalerLesson` — a ``StandardScaler``'s counts, means and variances of the examples since the last
  lesson (a second scaler learns them alongside); folding merges them in exactly (Chan et al.'s pairwise update),
  so the fleet's scaler is the scaler of every example any worker learned.
* :class:`MeanLesson` — a ``stats.Mean`` the same way (exact).
* :class:`WeightsLesson` — a linear model's SGD moves (weights and intercept) since the last lesson; folding adds
  another worker's moves (approximate: asynchronous SGD).
* :class:`CentresLesson` — k-means centres' moves since the last lesson, likewise; a coordinate a centre does
  not have yet counts from 0 (the mean, on standardised features, which is what the distance assumes for it).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from river import linear_model, preprocessing, stats


class ScalerLesson:
    """What a ``StandardScaler`` learned since the last lesson (a second scaler that sees the same examples)."""

    def __init__(self) -> None:
        self.since = preprocessing.StandardScaler()

    def learn(self, x: Mapping[str, float]) -> None:
        self.since.learn_one(x)

    def take(self) -> dict[str, Any] | None:
        since, self.since = self.since, preprocessing.StandardScaler()
        if not since.counts:
            return None
        return {
            "counts": dict(since.counts),
            "means": dict(since.means),
            "vars": dict(since.vars),
        }

    @staticmethod
    def whole(scaler: preprocessing.StandardScaler) -> dict[str, Any] | None:
        if not scaler.counts:
            return None
        return {"counts": dict(scaler.counts), "means": dict(scaler.means), "vars": dict(scaler.vars)}

    @staticmethod
    def fold(scaler: preprocessing.StandardScaler, lesson: Mapping[str, Any]) -> None:
        """Merge the lesson's statistics into ``scaler`` (pairwise update of count, mean and variance)."""
        counts, means, vars_ = scaler.counts, scaler.means, scaler.vars
        for k, n2 in lesson["counts"].items():
            n1 = counts.get(k, 0)
            n = n1 + n2
            m1, m2 = means.get(k, 0.0), float(lesson["means"][k])
            delta = m2 - m1
            var = (n1 * vars_.get(k, 0.0) + n2 * float(lesson["vars"][k]) + delta * delta * n1 * n2 / n) / n
            counts[k] = n
            means[k] = m1 + delta * n2 / n
            vars_[k] = var


class MeanLesson:
    """What a ``stats.Mean`` learned since the last lesson."""

    def __init__(self) -> None:
        self.since = stats.Mean()

    def learn(self, x: float) -> None:
        self.since.update(x)

    def take(self) -> dict[str, float] | None:
        since, self.since = self.since, stats.Mean()
        return None if since.n == 0 else {"n": since.n, "mean": since.get()}

    @staticmethod
    def whole(mean: stats.Mean) -> dict[str, float] | None:
        return None if mean.n == 0 else {"n": mean.n, "mean": mean.get()}

    @staticmethod
    def fold(mean: stats.Mean, lesson: Mapping[str, float]) -> None:
        mean.update(float(lesson["mean"]), w=float(lesson["n"]))  # a weighted update is the pairwise merge


class WeightsLesson:
    """A River linear model's weights and intercept as they stood after the last lesson (or fold)."""

    def __init__(self, model: linear_model.base.GLM) -> None:
        self.reset(model)

    def reset(self, model: linear_model.base.GLM) -> None:
        self.weights = dict(model._weights)
        self.intercept = float(model.intercept)

    def take(self, model: linear_model.base.GLM) -> dict[str, Any]:
        weights = model._weights
        moves = {k: float(w - self.weights.get(k, 0.0)) for k, w in weights.items() if w != self.weights.get(k)}
        lesson = {"weights": moves, "intercept": float(model.intercept) - self.intercept}
        self.reset(model)
        return lesson

    @staticmethod
    def whole(model: linear_model.base.GLM, intercept_init: float) -> dict[str, Any]:
        """Every move since the model was built (weights start at 0, the intercept at ``intercept_init``)."""
        return {
            "weights": {k: float(w) for k, w in model._weights.items()},
            "intercept": model.intercept - intercept_init,
        }

    def fold(self, model: linear_model.base.GLM, lesson: Mapping[str, Any]) -> None:
        weights = model._weights
        for k, move in lesson["weights"].items():
            weights[k] = weights.get(k, 0.0) + move
            self.weights[k] = self.weights.get(k, 0.0) + move  # not part of this worker's next lesson
        model.intercept += lesson["intercept"]
        self.intercept += lesson["intercept"]


class CentresLesson:
    """k-means centres as they stood after the last lesson (or fold)."""

    def __init__(self, centres: Mapping[int, Mapping[str, float]]) -> None:
        self.reset(centres)

    def reset(self, centres: Mapping[int, Mapping[str, float]]) -> None:
        self.centres = {c: dict(centre) for c, centre in centres.items()}

    def take(self, centres: Mapping[int, Mapping[str, float]]) -> dict[str, dict[str, float]]:
        moves: dict[str, dict[str, float]] = {}
        for c, centre in centres.items():
            before = self.centres.get(c, {})
            moved = {k: v - before.get(k, 0.0) for k, v in centre.items() if v != before.get(k)}
            if moved:
                moves[str(c)] = moved
        self.reset(centres)
        return moves

    def fold(self, centres: Mapping[int, MutableMapping[str, float]], moves: Mapping[str, Mapping[str, float]]) -> None:
        for c, moved in moves.items():
            centre, before = centres[int(c)], self.centres.setdefault(int(c), {})
            for k, move in moved.items():
                # ``get``: a missing coordinate is the mean (0), never the defaultdict's random draw
                centre[k] = centre.get(k, 0.0) + move
                before[k] = before.get(k, 0.0) + move
