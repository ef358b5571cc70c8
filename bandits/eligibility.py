"""Which offers a request may get: business rules that remove arms before the policy chooses.

A rule names a condition on the context (``"cart_value > 150"``, ``"segment == 2"``; one feature, one of
``< <= > >= == !=``, one number) and what it excludes when the condition holds: offers by name, and/or every
offer giving away more than ``max_share`` of the order. A missing or NaN feature never satisfies a condition (the
rule does not apply: rules restrict on what is known). An offer that costs nothing (``none``) is never excluded,
so every request keeps at least one eligible offer.

The policy then chooses among the eligible offers only, so the propensities it logs are over that set and sum
to 1 there; the decision lists the eligible offers, and off-policy evaluation gives a target policy the same set.

>>> from bandits.offers import Catalogue
>>> rules = Eligibility(
...     [EligibilityRule(when="cart_value > 150", offers=("free_shipping",)),
...      EligibilityRule(when="segment == 2", max_share=0.05)],
...     Catalogue(),
... )
>>> rules.eligible({"cart_value": 200.0, "segment": 2.0})
('none', 'discount_5')
>>> rules.eligible({"cart_value": float("nan")})
('none', 'discount_5', 'discount_10', 'discount_15', 'free_shipping')
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bandits.offers import Catalogue

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z0-9_.:\-]+)\s*(<=|>=|==|!=|<|>)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


class EligibilityRule(BaseModel):
    """When ``when`` holds, ``offers`` and every offer with a share above ``max_share`` are not eligible."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    when: str = Field(description="FEATURE OP NUMBER, e.g. 'cart_value > 150'")
    offers: tuple[str, ...] = ()
    max_share: float | None = Field(None, ge=0, lt=1, description="cap on the share of the order given away")

    @field_validator("when")
    @classmethod
    def _parses(cls, value: str) -> str:
        if _CONDITION.match(value) is None:
            raise ValueError(f"condition {value!r} is not 'FEATURE OP NUMBER' with OP one of {list(_OPS)}")
        return value

    def condition(self) -> tuple[str, Callable[[float, float], bool], float]:
        m = _CONDITION.match(self.when)
        assert m is not None  # validated
        return m[1], _OPS[m[2]], float(m[3])


class Eligibility:
    """The rules, compiled against the catalogue; :meth:`eligible` is called once per decision."""

    def __init__(self, rules: Sequence[EligibilityRule], catalogue: Catalogue) -> None:
        self.rules = tuple(rules)
        self.catalogue = catalogue
        free = {o.name for o in catalogue.offers if not o.is_offer}
        if self.rules and not free:
            raise ValueError("eligibility rules need an offer that costs nothing (e.g. 'none') to fall back to")
        self._compiled: list[tuple[str, Callable[[float, float], bool], float, frozenset[str]]] = []
        for rule in self.rules:
            unknown = sorted(set(rule.offers) - set(catalogue.names))
            if unknown:
                raise ValueError(f"eligibility rule {rule.when!r} names offers not in the catalogue: {unknown}")
            excluded = set(rule.offers)
            if rule.max_share is not None:
                excluded |= {o.name for o in catalogue.offers if o.share > rule.max_share}
            feature, op, threshold = rule.condition()
            self._compiled.append((feature, op, threshold, frozenset(excluded - free)))

    def eligible(self, context: Mapping[str, object]) -> tuple[str, ...]:
        """The catalogue's offers that no applying rule excludes, in catalogue order."""
        excluded: set[str] = set()
        for feature, op, threshold, offers in self._compiled:
            value = context.get(feature)
            if isinstance(value, int | float) and not math.isnan(value) and op(float(value), threshold):
                excluded |= offers
        if not excluded:
            return self.catalogue.names
        return tuple(name for name in self.catalogue.names if name not in excluded)
