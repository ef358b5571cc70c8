"""Shared learning: what one worker learned, handed to the others as a lesson they fold in (the fleet's one brain).

Every learner a worker holds (the policy's posterior, the order-value model, the River learners) hands over, on
:meth:`Shareable.lesson`, what it learned since the last lesson was taken, and learns another worker's lesson
with :meth:`Shareable.fold`, as if it had seen those examples itself. A lesson is plain numbers (JSON-able; never
a pickle: lessons travel over a topic other processes write to), and it never holds what the learner folded in
from others, so no lesson is counted twice however many workers pass it round.

Where the statistics are additive — a Bayesian linear model's precision and moments, conjugate counts, a
standard scaler's counts, means and variances, a regression's normal equations — folding is exact, forgetting
included: forgetting is by examples learned (each one ages what came before by ``γ``), so a lesson of ``k``
examples ages the folding learner by ``γ**k`` before adding what they taught, and a learner that learned the
first half of a stream and folded a lesson of the second half holds what one learner of the whole stream holds.
(Two workers learning at the same time each treat the other's lesson as the newer; the difference is an age of
one sharing interval, against half-lives of thousands of examples.) Where they are not additive — SGD weights,
k-means centres — a lesson is the learner's moves since the last one and folding adds them, as asynchronous SGD
does; how close that comes to one learner of the whole stream is measured (``tests/conformance/
test_shared_learning.py``, ``docs/design/fleet.md``), not assumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from stream.core.errors import OfferstreamError

Lesson = dict[str, Any]


@runtime_checkable
class Shareable(Protocol):
    """A learner whose learning a fleet of workers shares."""

    def lesson(self) -> Lesson | None:
        """What was learned since the last lesson was taken (None: nothing), as JSON-able data; taking it starts
        the next lesson. What was folded in from others is never part of it."""
        ...

    def fold(self, lesson: Mapping[str, Any]) -> None:
        """Learn another worker's lesson (taken from a learner built with the same settings)."""
        ...

    def whole_lesson(self) -> Lesson | None:
        """Everything learned so far, as one lesson to a learner that knows nothing (None: nothing learned):
        folded into a fresh learner it makes the same learner (how a new worker starts from the fleet's
        model). Taking it does not start a new lesson."""
        ...


class LessonMismatch(OfferstreamError, ValueError):
    """A lesson from a learner of another kind or layout (another policy, other context terms): not folded."""
