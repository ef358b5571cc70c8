"""The online-learner protocol every learner follows, the drift monitor each one carries, and shared helpers.

A learner learns one labelled example at a time as labels resolve (in event time), predicts one score, names
the learned state a prediction came from (:attr:`OnlineLearner.version`), and snapshots to JSON-able data.
Every learner feeds its prequential error — the error of the prediction it made *before* learning each example
— to a :class:`DriftMonitor`, which runs River's ADWIN on that stream; a probability learner also feeds its
prequential bias (label minus the probability it served), which a second ADWIN watches both ways.

>>> import random
>>> rng = random.Random(0)
>>> monitor = DriftMonitor(delta=0.002)
>>> for i in range(4000):  # an error rate of 10 %, then of 30 % from i = 2000 on
...     alarm = monitor.update(float(rng.random() < (0.1 if i < 2000 else 0.3)), ts_ms=i)
>>> monitor.alarms, monitor.last_alarm_ts_ms
(1, 2111)
"""

from __future__ import annotations

import base64
import math
import pickle
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from river import drift, preprocessing

from models.learners.calibration import OnlinePlatt
from stream.core.lessons import Lesson, LessonMismatch, Shareable

PICKLE_PROTOCOL = 5


@runtime_checkable
class OnlineLearner(Shareable, Protocol):
    """Learn one example as its label resolves; predict one score; snapshot and restore."""

    name: str

    def learn_one(
        self,
        x: Mapping[str, float],
        y: float | bool | None,
        *,
        weight: float = 1.0,
        ts_ms: int | None = None,
        watch: bool = True,
    ) -> None:
        """Learn one example; its error before learning goes to :attr:`drift` unless ``watch`` is False (the
        example's inputs are still warming up: its partition is younger than its features' history)."""
        ...

    def predict_one(self, x: Mapping[str, float]) -> float:
        """The learner's score for ``x`` (a segment id as a float for clustering). Never changes the state."""
        ...

    def score_one(self, x: Mapping[str, float]) -> float:
        """The score a decision's context takes: :meth:`predict_one` before any calibration. A calibration is
        refitted as examples arrive, so its output would change meaning under the policy's coefficients on it
        (measured: the policy earned 0.5-1.3 % less on calibrated scores, docs/results/policies.md)."""
        ...

    @property
    def version(self) -> str:
        """Identifies the learned state (``f"{name}@{n_learned}"``), logged with what it scored."""
        ...

    @property
    def drift(self) -> DriftMonitor: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...


class DriftMonitor:
    """ADWIN on a learner's prequential error stream and, for a probability, on its bias; counting alarms.

    The **error** detector: ADWIN flags a change of the stream's mean in either direction; with ``increase_only``
    (the default) only a rise of the error is an alarm, since a falling error (a learner still converging, or an
    easier period) needs no action. The direction is read from the mean of the last ``clock`` errors against the
    window's mean before the detection, not from where ADWIN cut its window: the first significant cut it finds
    can lie anywhere, even in a learner's early, worse days. Errors should lie in [0, 1]: ADWIN's bound assumes a
    bounded stream, so the learners normalise theirs.

    The **bias** detector watches ``label − probability`` (given to :meth:`update` as ``bias``, in [−1, 1]) and
    alarms on a change either way: when buying halves, a probability calibrated to the old rate predicts too high,
    yet its log loss *falls* (rare positives weigh less), so the error detector sees an easier stream; the bias
    shows the change for what it is (measured with ``make bench-drift``: docs/results/drift.md).

    River's ADWIN starts an empty window after each detection. Non-finite inputs are ignored. An alarm's reason
    (:attr:`last_alarm_reason`) says which detector fired and which way.

    Hyperparameters are public and named like the constructor's arguments; the detectors and counts are private.
    """

    def __init__(self, delta: float = 0.002, clock: int = 32, grace_period: int = 30, increase_only: bool = True):
        self.delta = delta
        self.clock = clock
        self.grace_period = grace_period
        self.increase_only = increase_only
        self._adwin = self._new_adwin()
        self._recent: deque[float] = deque(maxlen=clock)
        self._bias_adwin = self._new_adwin()
        self._bias_recent: deque[float] = deque(maxlen=clock)
        self._n = 0
        self._alarms = 0
        self._last_alarm_ts_ms: int | None = None
        self._last_alarm_reason: str | None = None

    def _new_adwin(self) -> drift.ADWIN:
        return drift.ADWIN(delta=self.delta, clock=self.clock, grace_period=self.grace_period)

    @property
    def alarms(self) -> int:
        """How many drifts were reported."""
        return self._alarms

    @property
    def last_alarm_ts_ms(self) -> int | None:
        """Event time of the latest alarm (None before the first, or when it came without a time)."""
        return self._last_alarm_ts_ms

    @property
    def last_alarm_reason(self) -> str | None:
        """What the latest alarm saw: ``error rose``, ``error fell``, ``predicting too high`` (fewer positives
        than predicted) or ``predicting too low``; None before the first."""
        return self._last_alarm_reason

    @property
    def n(self) -> int:
        """How many errors were seen."""
        return self._n

    @property
    def error(self) -> float:
        """Mean error over ADWIN's current window (the recent error level)."""
        return float(self._adwin.estimation)

    @property
    def bias(self) -> float:
        """Mean ``label − probability`` over the bias detector's current window (0 when it watched none)."""
        return 2.0 * float(self._bias_adwin.estimation) - 1.0 if self._bias_recent else 0.0

    def update(self, error: float, ts_ms: int | None = None, bias: float | None = None) -> bool:
        """Add one error (and, for a probability, its bias ``label − p``); True when either completes a drift."""
        if not math.isfinite(error):
            return False
        self._n += 1
        reason = _changed(self._adwin, self._recent, error)
        why = None if reason is None or (reason == "fell" and self.increase_only) else f"error {reason}"
        if bias is not None and math.isfinite(bias):
            moved = _changed(self._bias_adwin, self._bias_recent, (1.0 + min(max(bias, -1.0), 1.0)) / 2.0)
            if moved is not None and why is None:
                why = "predicting too low" if moved == "rose" else "predicting too high"
        if why is None:
            return False
        self._alarms += 1
        self._last_alarm_ts_ms = ts_ms
        self._last_alarm_reason = why
        return True

    def snapshot(self) -> dict[str, Any]:
        return {
            "params": self._params(),
            "n": self._n,
            "alarms": self._alarms,
            "last_alarm_ts_ms": self._last_alarm_ts_ms,
            "last_alarm_reason": self._last_alarm_reason,
            "recent": list(self._recent),
            "adwin": pack(self._adwin),
            "bias_recent": list(self._bias_recent),
            "bias_adwin": pack(self._bias_adwin),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`snapshot`; one from before the bias detector starts that detector empty."""
        check_params("DriftMonitor", state["params"], self._params())
        self._adwin = unpack(state["adwin"])
        self._recent = deque((float(e) for e in state["recent"]), maxlen=self.clock)
        self._bias_adwin = unpack(state["bias_adwin"]) if "bias_adwin" in state else self._new_adwin()
        self._bias_recent = deque((float(e) for e in state.get("bias_recent", ())), maxlen=self.clock)
        self._n = int(state["n"])
        self._alarms = int(state["alarms"])
        last = state["last_alarm_ts_ms"]
        self._last_alarm_ts_ms = None if last is None else int(last)
        self._last_alarm_reason = state.get("last_alarm_reason")

    def _params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "clock": self.clock,
            "grace_period": self.grace_period,
            "increase_only": self.increase_only,
        }


def _changed(adwin: drift.ADWIN, recent: deque[float], x: float) -> str | None:
    """Feed ``x`` to ``adwin``; on a detection, whether the stream ``rose`` or ``fell``: the mean of the last
    values (``recent``) against the window's mean before the detection."""
    recent.append(x)
    before = adwin.estimation
    adwin.update(x)
    if not adwin.drift_detected:
        return None
    return "rose" if sum(recent) / len(recent) > before else "fell"


class RiverLearner:
    """What every learner here shares: the count of examples learned (its version), the drift monitor, and a
    snapshot of its River objects (``_learned``) with its hyperparameters (``_params``) and the monitor.

    A subclass sets ``name``, calls :meth:`_start` in its constructor, and implements ``_params``,
    ``_learned`` (the tuple of River objects to pack) and ``_set_learned`` (its inverse).
    """

    name: str
    _n: int
    _n_at_lesson: int  # examples learned (or folded in) when the last lesson was taken
    _calibration: OnlinePlatt | None = None  # a probability learner's Platt scaling (models.learners.calibration)

    def _start(self, drift_delta: float) -> None:
        self._drift = DriftMonitor(delta=drift_delta)
        self._n = 0
        self._reset_lessons()

    @property
    def version(self) -> str:
        return f"{self.name}@{self._n}"

    def score_one(self, x: Mapping[str, float]) -> float:
        """:meth:`predict_one` before calibration (the same where a learner calibrates nothing)."""
        return self.predict_one(x)  # type: ignore[attr-defined]

    def _served(self, p: float) -> float:
        """The probability served for the model's own ``p``: calibrated, where the learner calibrates."""
        return p if self._calibration is None else self._calibration.apply(p)

    @property
    def drift(self) -> DriftMonitor:
        return self._drift

    def snapshot(self) -> dict[str, Any]:
        return {
            "learner": self.name,
            "params": self._params(),
            "n_learned": self._n,
            "state": pack(self._learned()),
            "drift": self._drift.snapshot(),
        } | ({} if self._calibration is None else {"calibration": self._calibration.snapshot()})

    def restore(self, state: Mapping[str, Any]) -> None:
        check_snapshot(self.name, state, self._params())
        self._set_learned(unpack(state["state"]))
        self._drift.restore(state["drift"])
        if self._calibration is not None:
            self._calibration.restore(state.get("calibration"))  # a snapshot from before calibration has none
        self._n = int(state["n_learned"])
        self._reset_lessons()

    # -- sharing (stream.core.lessons) ---------------------------------------------------------------
    def lesson(self) -> Lesson | None:
        """What was learned since the last lesson: the examples' count and each River object's part."""
        n = self._n - self._n_at_lesson
        if n <= 0:
            return None
        self._n_at_lesson = self._n
        return {"learner": self.name, "n": n, **self._lesson_parts(), **self._calibration_part(whole=False)}

    def whole_lesson(self) -> Lesson | None:
        if not self._n:
            return None
        return {"learner": self.name, "n": self._n, **self._whole_parts(), **self._calibration_part(whole=True)}

    def _calibration_part(self, whole: bool) -> dict[str, Any]:
        if self._calibration is None:
            return {}
        return {"calibration": self._calibration.whole() if whole else self._calibration.take_lesson()}

    def fold(self, lesson: Mapping[str, Any]) -> None:
        if lesson.get("learner") != self.name:
            raise LessonMismatch(f"a lesson of {lesson.get('learner')!r} is not for the {self.name!r} learner")
        self._fold_parts(lesson)
        if self._calibration is not None:
            self._calibration.fold(lesson.get("calibration"))
        self._n += int(lesson["n"])
        self._n_at_lesson += int(lesson["n"])

    def _reset_lessons(self) -> None:
        """Start keeping lessons from the River objects as they are now (after building or restoring them)."""
        self._n_at_lesson = self._n

    def _lesson_parts(self) -> dict[str, Any]:
        raise NotImplementedError

    def _fold_parts(self, lesson: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _whole_parts(self) -> dict[str, Any]:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _learned(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def _set_learned(self, learned: tuple[Any, ...]) -> None:
        raise NotImplementedError


def pack(obj: Any) -> str:
    """Base64 of a pickle: River objects inside a JSON snapshot (a signed checkpoint layer protects it)."""
    return base64.b64encode(pickle.dumps(obj, protocol=PICKLE_PROTOCOL)).decode("ascii")


def unpack(data: str) -> Any:
    """Inverse of :func:`pack`. Unpickles: only for snapshots whose signature the checkpoint layer checked."""
    return pickle.loads(base64.b64decode(data))  # trusted, signed checkpoints only


def check_params(owner: str, saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Refuse a snapshot taken with other hyperparameters: the pickled state carries the old ones."""
    if dict(saved) != dict(current):
        raise ValueError(f"{owner} snapshot has hyperparameters {dict(saved)}, this one {dict(current)}")


def check_snapshot(name: str, state: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Refuse another learner's snapshot, or one taken with other hyperparameters."""
    if state.get("learner") != name:
        raise ValueError(f"snapshot of {state.get('learner')!r} cannot restore the {name!r} learner")
    check_params(name, state["params"], current)


def clean(x: Mapping[str, float]) -> dict[str, float]:
    """The finite features of ``x`` as floats; a non-finite value counts as missing (it would poison SGD).

    >>> clean({"a": 1, "b": float("nan"), "c": True})
    {'a': 1.0, 'c': 1.0}
    """
    out = {}
    for k, v in x.items():
        f = float(v)
        if math.isfinite(f):
            out[k] = f
    return out


def scaled(scaler: preprocessing.StandardScaler, x: Mapping[str, float]) -> dict[str, float]:
    """``scaler.transform_one(x)`` without its side effect: River's defaultdicts insert every unseen feature.

    An unseen or constant feature scales to 0.0 (its mean), as River does.

    >>> s = preprocessing.StandardScaler()
    >>> for v in (1.0, 3.0):
    ...     s.learn_one({"a": v})
    >>> scaled(s, {"a": 3.0, "new": 5.0}), sorted(s.means)
    ({'a': 1.0, 'new': 0.0}, ['a'])
    """
    means, variances = scaler.means, scaler.vars
    out = {}
    for k, v in x.items():
        var = variances.get(k, 0.0)
        out[k] = (v - means[k]) / var**0.5 if var > 0.0 else 0.0
    return out


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def log_loss(p: float, y: bool, eps: float = 1e-3) -> float:
    """Log loss of probability ``p`` for label ``y``, with ``p`` clipped to [eps, 1 − eps], divided by its cap
    −ln(eps) so the error lies in [0, 1] as ADWIN's bound assumes.

    >>> round(log_loss(0.5, True), 4), log_loss(0.0, True)
    (0.1003, 1.0)
    """
    p = min(max(p, eps), 1.0 - eps)
    return -math.log(p if y else 1.0 - p) / -math.log(eps)
