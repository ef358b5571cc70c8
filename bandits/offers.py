"""The offer catalogue: what the bandit can show, and what each offer costs when it is redeemed.

An offer costs nothing unless the shopper buys. A discount costs its share of the order value; free shipping
costs the shop a flat fee (the carrier's price it no longer passes on).

>>> catalogue = default_catalogue()
>>> [o.name for o in catalogue]
['none', 'discount_5', 'discount_10', 'discount_15', 'free_shipping']
>>> catalogue_by_name(catalogue)["discount_10"].cost(80.0)
8.0
>>> profit(catalogue_by_name(catalogue)["free_shipping"], revenue=40.0, margin=0.3)
6.01
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Offer(BaseModel):
    """One offer: a name, and its cost as a share of the order plus a flat fee."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    share: float = Field(0.0, ge=0.0, lt=1.0, description="share of the order value given away")
    flat_fee: float = Field(0.0, ge=0.0, description="flat cost per redeemed order")

    def cost(self, revenue: float) -> float:
        """What redeeming this offer on an order worth ``revenue`` costs the shop."""
        return round(self.share * revenue + self.flat_fee, 6)

    @property
    def is_offer(self) -> bool:
        """Whether the shopper gets anything (``none`` costs nothing and gives nothing)."""
        return self.share > 0.0 or self.flat_fee > 0.0


def profit(offer: Offer, revenue: float, margin: float) -> float:
    """Reward of an order: margin × revenue − offer cost (0 when nothing was bought)."""
    if revenue <= 0.0:
        return 0.0
    return round(margin * revenue - offer.cost(revenue), 6)


DEFAULT_SHIPPING_FEE = 5.99


def default_catalogue(shipping_fee: float = DEFAULT_SHIPPING_FEE) -> tuple[Offer, ...]:
    """`none`, three discounts costing their share of the order, and free shipping at a flat fee."""
    return (
        Offer(name="none"),
        Offer(name="discount_5", share=0.05),
        Offer(name="discount_10", share=0.10),
        Offer(name="discount_15", share=0.15),
        Offer(name="free_shipping", flat_fee=shipping_fee),
    )


def catalogue_by_name(offers: Iterable[Offer]) -> Mapping[str, Offer]:
    return {o.name: o for o in offers}


class Catalogue(BaseModel):
    """A validated catalogue: unique names, at least one offer."""

    model_config = ConfigDict(frozen=True)

    offers: tuple[Offer, ...] = Field(default_factory=default_catalogue)

    @model_validator(mode="after")
    def _unique_names(self) -> Catalogue:
        names = [o.name for o in self.offers]
        if not names:
            raise ValueError("the offer catalogue is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"offer names repeat: {names}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.offers)

    def terms(self) -> dict[str, dict[str, float]]:
        """Each offer's terms by name (``share``, ``flat_fee``): what a decision logs as ``offer_terms``."""
        return {o.name: {"share": o.share, "flat_fee": o.flat_fee} for o in self.offers}

    def __getitem__(self, name: str) -> Offer:
        for o in self.offers:
            if o.name == name:
                return o
        raise KeyError(name)
