"""Online segments of shoppers: River's incremental k-means on standardised behaviour vectors.

A ``StandardScaler`` learned alongside puts features on one scale (k-means is distance-based); a feature that
is missing from a vector sits at its mean (0 after scaling). Each example moves its nearest centre by
``halflife`` of the way towards it. The default ``halflife`` is 0.1 rather than River's 0.5: at 0.5 a centre
jumps half-way to every single shopper, so segment ids flicker; 0.1 averages over the last ~10 members.

Deviations from calling ``river.cluster.KMeans`` as is:

* Seeding. River starts the centres at random Gaussian draws; with a handful of segments in a dozen dimensions
  two often start closest to the same group, one centre then never wins and two groups share a segment (about
  half of our seeded trials on four well-separated blobs). So the first ``warmup`` vectors are buffered while
  the scaler learns, then the centres are picked from them by k-means++ (seeded by ``seed``), and the buffer is
  learned and dropped. Until then every vector is in segment 0 and the drift monitor waits.
* Replay. The nearest centre is found without touching the centres (River's ``predict_one`` draws a random
  coordinate for every unseen feature, so predicting would change the model), summing over features in a fixed
  order (River sums over a set, whose order of string keys changes between processes); a new feature's
  initial coordinates (River's seeded draws) are drawn in the order the features arrive.

Shared by a fleet (:mod:`stream.core.lessons`): the scaler's statistics merge exactly; the centres' moves since
the last lesson are added to the other workers' centres (approximate, measured). Segment ids mean the same on
every worker only if the centres started from the same seeding: a lesson names the seeding its moves are
relative to (its *basis*: a digest of the seeded centres and the examples learned when it was made) and carries
the centres as they are. A worker still warming up adopts them (and learns its buffer into them); two workers
that seeded at the same time keep the seeding made after fewer examples (ties: the smaller digest), so a
worker that joins an established fleet and seeds on its own gives way; moves relative to another basis are not
folded.

The drift monitor sees the distance from each vector to its nearest centre before learning it, as the root
mean square per feature in scaled units ``d``, squashed to ``d / (1 + d)`` in [0, 1): it rises when shoppers
stop looking like any segment.

>>> import random
>>> rng = random.Random(0)
>>> model = SegmentLearner(seed=0, n_clusters=2)
>>> for _ in range(500):
...     big = rng.random() < 0.5
...     model.learn_one({"cart_value": rng.gauss(200 if big else 20, 5), "adds": rng.gauss(4 if big else 1, 0.3)}, None)
>>> model.predict_one({"cart_value": 200.0, "adds": 4.0}) != model.predict_one({"cart_value": 20.0, "adds": 1.0})
True
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from typing import Any

import orjson
from river import cluster, preprocessing

from models.learners.base import RiverLearner, clean, scaled
from models.learners.lessons import CentresLesson, ScalerLesson

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class _StableKMeans(cluster.KMeans):
    """River's incremental k-means whose prediction is pure and independent of hash order (see module doc)."""

    def learn_one(self, x: dict) -> None:
        for center in self.centers.values():
            for k in x:
                center[k]  # the defaultdict draws River's seeded initial coordinate, in x's order
        super().learn_one(x)

    def predict_one(self, x: dict) -> int:
        return nearest(self.centers, x)[0]


def nearest(centers: Mapping[int, Mapping[str, float]], z: Mapping[str, float]) -> tuple[int, float]:
    """The nearest centre's id and its squared Euclidean distance (missing coordinates are 0, the mean)."""
    best, best_d = 0, math.inf
    get = z.get
    for c, center in centers.items():
        d = 0.0
        for k, v in center.items():
            d += (v - get(k, 0.0)) ** 2
        if not z.keys() <= center.keys():  # a set comparison in C; the usual case is that every key is there
            for k, v in z.items():
                if k not in center:
                    d += v * v
        if d < best_d:
            best, best_d = c, d
    return best, best_d


class SegmentLearner(RiverLearner):
    """Segment id of a behaviour vector by online k-means; ``learn_one(x, None)`` (labels and weights ignored).

    Hyperparameters are public and named like the constructor's arguments; the learned state is private.
    """

    name = "segments"

    def __init__(
        self,
        seed: int = 0,
        n_clusters: int = 4,
        halflife: float = 0.1,
        warmup: int = 50,
        drift_delta: float = 0.002,
    ) -> None:
        if warmup < n_clusters:
            raise ValueError(f"warmup ({warmup}) must be at least n_clusters ({n_clusters})")
        self.seed = seed
        self.n_clusters = n_clusters
        self.halflife = halflife
        self.warmup = warmup
        self.drift_delta = drift_delta
        self._buffer: list[dict[str, float]] | None = []  # raw vectors until the centres are seeded, then None
        self._basis: dict[str, Any] | None = None  # the seeding the centres grew from (None: not seeded, or unknown)
        self._scaler = preprocessing.StandardScaler()
        self._kmeans = _StableKMeans(n_clusters=n_clusters, halflife=halflife, mu=0.0, sigma=1.0, seed=seed)
        self._start(drift_delta)

    def learn_one(
        self,
        x: Mapping[str, float],
        y: float | bool | None = None,
        *,
        weight: float = 1.0,
        ts_ms: int | None = None,
        watch: bool = True,
    ) -> None:
        """Move the nearest segment's centre towards ``x``; ``y`` and ``weight`` are ignored."""
        x = clean(x)
        self._n += 1
        if self._buffer is not None:
            self._scaler.learn_one(x)
            self._scaler_lesson.learn(x)
            self._buffer.append(x)
            if len(self._buffer) >= self.warmup:
                self._seed_centers(self._buffer)
                self._buffer = None
            return
        if watch:
            z = scaled(self._scaler, x)
            _, d2 = nearest(self._kmeans.centers, z)
            dims = max(len(z), *(len(center) for center in self._kmeans.centers.values()), 1)
            rms = math.sqrt(d2 / dims)
            self._drift.update(rms / (1.0 + rms), ts_ms)
        self._scaler.learn_one(x)
        self._scaler_lesson.learn(x)
        self._kmeans.learn_one(scaled(self._scaler, x))

    def _seed_centers(self, raw: list[dict[str, float]]) -> None:
        """k-means++ over the buffered vectors (scaled with what the scaler knows now), then learn them."""
        zs = [scaled(self._scaler, x) for x in raw]
        keys = list(dict.fromkeys(k for z in zs for k in z))
        rng = random.Random(self.seed)
        picks = [zs[rng.randrange(len(zs))]]
        d2 = [nearest({0: picks[0]}, z)[1] for z in zs]
        tries = 2 + int(math.log(self.n_clusters))  # greedy k-means++, as scikit-learn: best of a few draws
        while len(picks) < self.n_clusters:
            best: tuple[float, list[float], dict[str, float]] | None = None
            for _ in range(tries):
                i = rng.choices(range(len(zs)), weights=d2)[0] if sum(d2) > 0.0 else rng.randrange(len(zs))
                new = [min(a, nearest({0: zs[i]}, z)[1]) for a, z in zip(d2, zs, strict=True)]
                if best is None or sum(new) < best[0]:
                    best = (sum(new), new, zs[i])
            assert best is not None
            _, d2, pick = best
            picks.append(pick)
        for center, pick in zip(self._kmeans.centers.values(), picks, strict=True):
            center.clear()
            center.update({k: pick.get(k, 0.0) for k in keys})
        seeded = self.centers()
        self._basis = {"n": self._n, "id": hashlib.sha256(orjson.dumps(seeded, option=_SORTED)).hexdigest()[:16]}
        self._centres_lesson.reset(seeded)
        for z in zs:
            self._kmeans.learn_one(z)

    # -- sharing -------------------------------------------------------------------------------------
    def _reset_lessons(self) -> None:
        super()._reset_lessons()
        self._scaler_lesson = ScalerLesson()
        self._centres_lesson = CentresLesson(self._kmeans.centers)

    def _lesson_parts(self) -> dict[str, Any]:
        seeded = self._buffer is None
        return {
            "scaler": self._scaler_lesson.take(),
            "basis": self._basis if seeded else None,
            "centres": {str(c): centre for c, centre in self.centers().items()} if seeded else None,
            "moves": self._centres_lesson.take(self._kmeans.centers) if seeded else None,
        }

    def _whole_parts(self) -> dict[str, Any]:
        seeded = self._buffer is None
        return {
            "scaler": ScalerLesson.whole(self._scaler),
            "basis": self._basis if seeded else None,
            "centres": {str(c): centre for c, centre in self.centers().items()} if seeded else None,
            "moves": {} if seeded else None,
        }

    def _fold_parts(self, lesson: Mapping[str, Any]) -> None:
        if lesson["scaler"]:
            ScalerLesson.fold(self._scaler, lesson["scaler"])
        basis = lesson["basis"]
        if basis is None:
            return
        if (
            self._buffer is not None
        ):  # still warming up: the fleet's segments, and this worker's buffer learned into them
            self._adopt(basis, lesson["centres"])
            for x in self._buffer:
                self._kmeans.learn_one(scaled(self._scaler, x))
            self._buffer = None
        elif basis == self._basis or self._basis is None:
            self._basis = basis
            self._centres_lesson.fold(self._kmeans.centers, lesson["moves"])
        elif (basis["n"], basis["id"]) < (self._basis["n"], self._basis["id"]):
            self._adopt(
                basis, lesson["centres"]
            )  # the fleet's older seeding wins; this worker's moves since are dropped

    def _adopt(self, basis: Mapping[str, Any], centres: Mapping[str, Mapping[str, float]]) -> None:
        for c, center in self._kmeans.centers.items():
            center.clear()
            center.update(centres[str(c)])
        self._basis = dict(basis)
        self._centres_lesson.reset(self._kmeans.centers)

    def predict_one(self, x: Mapping[str, float]) -> float:
        """The id of the nearest segment (0 .. n_clusters − 1) as a float."""
        return float(nearest(self._kmeans.centers, scaled(self._scaler, clean(x)))[0])

    def centers(self) -> dict[int, dict[str, float]]:
        """The segments' centres in standardised units (a copy)."""
        return {c: dict(center) for c, center in self._kmeans.centers.items()}

    def _learned(self) -> tuple[Any, ...]:
        return (self._scaler, self._kmeans, self._buffer, self._basis)

    def _set_learned(self, learned: tuple[Any, ...]) -> None:
        self._scaler, self._kmeans, self._buffer = learned[:3]
        self._basis = learned[3] if len(learned) > 3 else None  # checkpoints before lessons: basis unknown

    def _params(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "n_clusters": self.n_clusters,
            "halflife": self.halflife,
            "warmup": self.warmup,
            "drift_delta": self.drift_delta,
        }
