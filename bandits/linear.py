"""What the two linear policies share: one Bayesian linear model of the reward of every offer, on the context.

**The economics are known, the behaviour is learned.** At a decision the shop knows what it keeps if the
shopper buys under each offer (``margin_value:<offer>`` = margin × the order − the offer's cost, computed by the
processor on the order expected under that offer, see :mod:`bandits.order_value`). With ``value_key=
"margin_value"`` the model predicts ``margin_value(o) × p(x, o)``, where ``p`` is a linear purchase probability.
The policy never has to discover from noisy profits that a 15 % discount costs three times a 5 % one, only
whether it makes this shopper buy. ``target`` says what ``p`` is fitted to: ``"purchase"`` (the shop's
default), whether the decision's session bought, on the unscaled rows (0/1 targets; :meth:`LinearArms.update`
takes ``converted``, or reads a non-zero reward as a purchase); ``"profit"``, the profit itself, on rows scaled
by the value at stake (every decision then weighs by its value at stake, and a reward needs no purchase flag).
On the simulator the purchase target with values on the expected order beat every fixed offer where the profit
target on the cart did not (README, "Policies"). The probabilities it samples or bounds are clipped to [0, 1]
before they are multiplied by the value: a linear probability model extrapolates below 0, and unclipped, a
negative "probability" would make the offer with the least at stake (the biggest discount) look best. Without
``value_key`` the model predicts the reward itself (e.g. a click, ``target="profit"``) and nothing is clipped.

**One model with offer-interaction terms, not one model per offer.** ``p(x, o) = θ·x + δ_o + Σ_a t_a(o)·β_a·l``
where ``x`` is the full context (``context``: both models' scores, segment, cart, history, time, device), ``l`` a
few terms on which offers' effects differ (``lift_context``: the models' lift scores, the segment, cart size,
price sensitivity signals, device, channel), and ``t_a(o)`` the offer's terms (``lift_by``: the discount in
units of 10 % and whether a flat fee is waived, read from ``offer_discount:<offer>`` and ``offer_flat:<offer>``
in the context, which the processor fills from the catalogue). The baseline ``θ`` — who buys at all, which is
most of what there is to learn — is learned from every decision whatever the offer; each offer has only its
intercept ``δ_o``; and who responds to discounts is learned once from all three discount levels, in proportion
to their size, as the price-sensitivity learner does. On the simulator (30 days, 8,000 shoppers, ~10,000
decisions, seed 3) that sharing is what made the policy pay: a block of lift coefficients per offer (``lift_by=()``,
still available, e.g. for actions without attributes) earned 0.882 of the oracle's profit against 0.893 for
always showing nothing, because each rarely shown offer kept a wide posterior over 15 coefficients and Thompson
sampling kept exploring it; shared, 0.893 over 30 days and 0.898 against 0.891 over 60. A model per offer
("disjoint", Li et al. 2010) learns the baseline five times over from a fifth of the data each and did worse
still (0.866). Offers share one posterior, so their sampled rewards are correlated and are drawn jointly. An
offer seen for the first time adds its intercept (or block) to the posterior with the prior alone (exact, see
:meth:`LinearPosterior.grow`).

The prior is warm-started from the nightly snapshot: ``prior_coefficients`` (default ``{"arm:buy_snapshot": 1}``)
makes the prior purchase probability under each offer the snapshot's price model's probability under that
offer's terms, which the posterior then corrects; without a snapshot the term is 0 and the prior is flat.
Forgetting is by rewards received: each reward ages the posterior by ``γ = 2^(−1/forget_half_life)`` (see
:mod:`bandits.linear_model`), so after a drift old evidence fades and uncertainty returns.

A fleet shares the posterior (:mod:`stream.core.lessons`): a lesson is the data statistics of the rewards since
the last one, with the offers in the order of their columns; folding one ages the posterior by ``γ`` per reward
in it and adds them, each offer's columns put where this posterior keeps that offer (workers meet offers in
different orders). Exact: the statistics are sums.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bandits.base import Choice
from bandits.context import DEFAULT_CONTEXT, DEFAULT_LIFT_CONTEXT, ContextEncoder, offer_values
from bandits.linear_model import LinearPosterior
from stream.core.lessons import Lesson, LessonMismatch

WARM_START = {"arm:buy_snapshot": 1.0}
VALUE_KEY = "margin_value"
# What the processor tells the policy about each offer's terms (``<attribute>:<offer>`` in the context): the
# discount in units of 10 % and whether a flat fee (shipping) is waived. The lift terms interact with these.
LIFT_BY = ("offer_discount", "offer_flat")
# What the model is fitted to: the profit (rows scaled by the value at stake) or whether the shopper bought.
TARGETS = ("profit", "purchase")
# The noise prior's scale sized for each target (the prior mean noise variance is scale / (shape − 1)): a
# decision's profit varies by hundreds of squared dollars; a purchase flag's variance is at most 0.25.
NOISE_PRIOR_SCALE = {"profit": 300.0, "purchase": 0.25}
# The model's hyperparameters: the constructor's arguments, each kept as a public attribute of the same name and
# configured under the same name in ``policy.*`` (``bandits.factory.linear_kwargs`` reads them from there).
HYPERPARAMETERS: tuple[str, ...] = (
    "context",
    "lift_context",
    "lift_by",
    "mc_samples",
    "propensity_floor",
    "prior_precision",
    "lift_prior_precision",
    "noise_prior_shape",
    "noise_prior_scale",
    "forget_half_life",
    "prior_coefficients",
    "value_key",
    "target",
)


class LinearArms:
    """The shared posterior and the design rows of a context; subclasses turn predictions into probabilities."""

    name = "linear"

    def __init__(
        self,
        context: Sequence[str] = DEFAULT_CONTEXT,
        lift_context: Sequence[str] = DEFAULT_LIFT_CONTEXT,
        mc_samples: int = 1000,
        propensity_floor: float = 0.01,
        prior_precision: float = 1.0,
        lift_prior_precision: float = 1.0,
        noise_prior_shape: float = 2.0,
        noise_prior_scale: float | None = None,
        forget_half_life: float | None = 20_000.0,
        prior_coefficients: Mapping[str, float] | None = None,
        value_key: str | None = VALUE_KEY,
        lift_by: Sequence[str] = LIFT_BY,
        target: str = "profit",
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"target {target!r} is not one of {TARGETS}")
        if target == "purchase" and value_key is None:
            raise ValueError("a purchase target ranks offers by P(buy) × value at stake: it needs a value_key")
        self.context = tuple(context)
        self.lift_context = tuple(lift_context)
        self.lift_by = tuple(lift_by)
        self.mc_samples = mc_samples
        self.propensity_floor = propensity_floor
        self.prior_precision = prior_precision
        self.lift_prior_precision = lift_prior_precision
        self.noise_prior_shape = noise_prior_shape
        self.noise_prior_scale = NOISE_PRIOR_SCALE[target] if noise_prior_scale is None else noise_prior_scale
        self.forget_half_life = forget_half_life
        self.prior_coefficients = dict(WARM_START if prior_coefficients is None else prior_coefficients)
        self.value_key = value_key
        self.target = target
        self._base = ContextEncoder(self.context)
        self._lift = ContextEncoder(self.lift_context)
        prior_mean = np.zeros(self._base.dim)
        for term, value in self.prior_coefficients.items():
            if term in self._base.names:
                prior_mean[self._base.names.index(term)] = value
        self._gamma = 1.0 if forget_half_life is None else 2.0 ** (-1.0 / forget_half_life)
        self._posterior = LinearPosterior(
            self._base.dim, prior_precision, noise_prior_shape, self.noise_prior_scale, prior_mean
        )
        self._blocks: dict[str, int] = {}  # offer -> index of its lift block (or intercept), in order of first sight
        self._shared = 0  # columns of the attribute-interaction blocks (``lift_by``), allocated at first sight
        self._rewards = 0
        self._lesson_rewards = 0
        self._restored_columns: np.ndarray | None = None  # the snapshot's columns kept by the last restore

    @property
    def version(self) -> str:
        return f"{self.name}@{self._rewards}"

    def values(self, context: Mapping[str, Any], offers: Sequence[str]) -> np.ndarray | None:
        """Each offer's value at stake (None without ``value_key``: the model predicts the reward itself)."""
        return None if self.value_key is None else offer_values(context, self.value_key, offers)

    def _design(self, context: Mapping[str, Any], offers: Sequence[str]) -> np.ndarray:
        """One row per offer: the context, then the offer's lift (not value-scaled).

        With ``lift_by`` the lift is ``δ_o + Σ_a attribute_a(o) · β_a·l``: an intercept per offer and one block
        of lift coefficients per offer attribute, shared by every offer that has it; without, a block of lift
        coefficients per offer (``β_o·l``).
        """
        width = self._lift.dim
        if self.lift_by and not self._shared:
            self._shared = len(self.lift_by) * width
            self._posterior.grow(self._shared, precision=self.lift_prior_precision)
        new = [o for o in dict.fromkeys(offers) if o not in self._blocks]
        for offer in new:
            self._blocks[offer] = len(self._blocks)
        if new:
            per_offer = 1 if self.lift_by else width
            self._posterior.grow(len(new) * per_offer, precision=self.lift_prior_precision)
        base = self._base.encode(context, offers)
        lift = self._lift.encode(context, offers)
        rows = np.zeros((len(offers), self._posterior.dim))
        rows[:, : base.shape[1]] = base
        start = self._base.dim
        if self.lift_by:
            for a, attribute in enumerate(self.lift_by):
                block = start + a * width
                rows[:, block : block + width] = lift * offer_values(context, attribute, offers)[:, None]
            for j, offer in enumerate(offers):
                rows[j, start + self._shared + self._blocks[offer]] = 1.0
            return rows
        for j, offer in enumerate(offers):
            block = start + self._blocks[offer] * width
            rows[j, block : block + width] = lift[j]
        return rows

    def predict(self, context: Mapping[str, Any], offers: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """The joint predictive of ``p(x, o)`` for the offers (the purchase probability with ``value_key``, the
        reward without): means, scale matrix, dof."""
        return self._posterior.predictive_joint(self._design(context, offers))

    def to_reward(self, p: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        """Predicted ``p`` (one column per offer) to rewards: clipped to [0, 1] and times the values at stake."""
        return p if values is None else np.clip(p, 0.0, 1.0) * values

    def choose(self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator) -> Choice:
        raise NotImplementedError

    def update(
        self, context: Mapping[str, float], offer: str, reward: float, propensity: float, converted: bool | None = None
    ) -> None:
        """Learn one reward: the profit on the row scaled by the value at stake, or (``target="purchase"``)
        whether the shopper bought on the unscaled row (``converted``; without it, a non-zero reward)."""
        if not math.isfinite(reward):
            raise ValueError(f"reward {reward!r} is not a finite number")
        self._learn(self._design(context, [offer])[0], context, offer, reward, converted)

    def _learn(
        self, row: np.ndarray, context: Mapping[str, float], offer: str, reward: float, converted: bool | None
    ) -> None:
        """:meth:`update` with the offer's design ``row`` already built (it may be scaled in place)."""
        if self.target == "purchase":
            y = float(reward != 0.0 if converted is None else converted)
        else:
            y = float(reward)
            values = self.values(context, [offer])
            if values is not None:
                row *= values[0]
        self._rewards += 1
        self._lesson_rewards += 1
        self._posterior.decay(self._gamma)
        self._posterior.update(row, y)

    def _layout(self) -> list[Any]:
        return [list(self.context), list(self.lift_context), self.value_key, list(self.lift_by), self.target]

    def lesson(self) -> Lesson | None:
        if not self._lesson_rewards:
            return None
        lesson = self._as_lesson(self._lesson_rewards, self._posterior.take_lesson())
        self._lesson_rewards = 0
        return lesson

    def whole_lesson(self) -> Lesson | None:
        return self._as_lesson(self._rewards, self._posterior.learned()) if self._rewards else None

    def _as_lesson(self, rewards: int, data: Mapping[str, Any]) -> Lesson:
        upper = np.triu_indices(self._posterior.dim)  # the precision is symmetric: its upper triangle goes
        return {
            "policy": self.name,
            "layout": self._layout(),
            "rewards": rewards,
            "offers": sorted(self._blocks, key=self._blocks.__getitem__),
            "shared": self._shared,
            "a": data["a"][upper].tolist(),
            "xr": data["xr"].tolist(),
            "rr": data["rr"],
            "n": data["n"],
        }

    def fold(self, lesson: Mapping[str, Any]) -> None:
        if lesson.get("policy") != self.name or lesson.get("layout") != self._layout():
            raise LessonMismatch(
                f"a lesson of {lesson.get('policy')!r} with layout {lesson.get('layout')} is not for this "
                f"{self.name!r} policy with layout {self._layout()}"
            )
        offers = list(lesson["offers"])
        self._design({}, offers)  # the offers this posterior has not met yet get their columns (prior alone)
        start, per_offer = self._base.dim, 1 if self.lift_by else self._lift.dim
        fixed = start + int(lesson["shared"])  # the context's and the attribute blocks' columns: the same layout
        index = list(range(fixed))
        for offer in offers:
            block = start + self._shared + self._blocks[offer] * per_offer
            index.extend(range(block, block + per_offer))
        rewards = int(lesson["rewards"])
        upper = np.triu_indices(len(index))
        a = np.zeros((len(index), len(index)))
        a[upper] = lesson["a"]
        a.T[upper] = lesson["a"]
        columns = np.asarray(index, dtype=int)
        self._posterior.fold(
            self._gamma**rewards,
            a,
            np.asarray(lesson["xr"], dtype=float),
            float(lesson["rr"]),
            float(lesson["n"]),
            rewards,
            columns,
        )
        self._folded(lesson, self._gamma**rewards, columns)
        self._rewards += rewards

    def _folded(self, lesson: Mapping[str, Any], factor: float, columns: np.ndarray) -> None:
        """What a subclass learns beside the posterior, folded the same way: aged by ``factor``, the lesson's
        column ``j`` added at ``columns[j]``."""

    def snapshot(self) -> dict[str, Any]:
        return {
            "context": list(self.context),
            "lift_context": list(self.lift_context),
            "value_key": self.value_key,
            "lift_by": list(self.lift_by),
            "target": self.target,
            "rewards": self._rewards,
            "offers": sorted(self._blocks, key=self._blocks.__getitem__),
            "posterior": self._posterior.snapshot(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Restore a snapshot. One whose context or lift context held terms this configuration has dropped
        restores without them, exactly: the posterior's statistics as if those terms had never been in the
        context (a Gaussian's precision-form statistics restricted to the kept columns)."""
        layout = (list(self.context), list(self.lift_context), self.value_key, list(self.lift_by), self.target)
        stored = (
            state["context"],
            state["lift_context"],
            state["value_key"],
            state.get("lift_by", []),
            state.get("target", "profit"),
        )
        self._restored_columns = None
        if stored != layout:
            dropping = set(layout[0]) <= set(stored[0]) and set(layout[1]) <= set(stored[1])
            if stored[2:] != layout[2:] or not dropping:
                raise ValueError(
                    f"snapshot's context, lift context, value key, lift attributes and target {stored} are not the "
                    f"configured {layout} (a configuration may only drop context terms from a snapshot's)"
                )
            self._restore_dropping(state)
            return
        self._forget_columns()
        if state["offers"]:  # an untrained model has not grown its offer columns yet
            self._design({}, state["offers"])
        self._posterior.restore(state["posterior"])
        self._rewards = int(state["rewards"])
        self._lesson_rewards = 0

    def _forget_columns(self) -> None:
        """Back to the context's columns with the prior alone (offers and attribute blocks grow again)."""
        self._blocks = {}
        self._shared = 0
        self._posterior = LinearPosterior(
            self._base.dim,
            self.prior_precision,
            self.noise_prior_shape,
            self.noise_prior_scale,
            self._posterior.prior_mean[: self._base.dim],
        )

    def _restore_dropping(self, state: Mapping[str, Any]) -> None:
        """Restore a snapshot of a wider context: read it as it was, then keep the columns still configured."""
        mine = {name: getattr(self, name) for name in HYPERPARAMETERS}
        was = LinearArms(**mine | {"context": state["context"], "lift_context": state["lift_context"]})
        was.restore(state)
        self._forget_columns()
        if was._blocks:
            self._design({}, sorted(was._blocks, key=was._blocks.__getitem__))
        columns = was.column_names()
        keep = np.array([columns.index(name) for name in self.column_names()], dtype=int)
        self._posterior.adopt(was._posterior, keep)
        self._rewards = was._rewards
        self._lesson_rewards = 0
        self._restored_columns = keep

    def column_names(self) -> list[str]:
        """Each posterior column's name: the context terms, the lift terms per offer attribute (``lift_by``),
        then each offer's intercept (or, without ``lift_by``, its block of lift terms), in column order."""
        names = [f"context {t}" for t in self._base.names]
        offers = sorted(self._blocks, key=self._blocks.__getitem__)
        if self.lift_by:
            if self._shared:
                names += [f"{a} × {t}" for a in self.lift_by for t in self._lift.names]
            return names + [f"offer {o}" for o in offers]
        return names + [f"offer {o} × {t}" for o in offers for t in self._lift.names]
