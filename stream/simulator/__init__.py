"""A shop simulator with ground truth: synthetic shoppers, realistic sessions, offers that matter, drift.

Shoppers (``shoppers.py``) carry latent traits drawn once from the seed: a segment, purchase intent, price
and shipping sensitivity, a device preference and a session rate. Sessions (``sessions.py``) are planned up
front from their own generator and emit clickstream events; the offer shown at the first decision point
moves checkout and purchase through a logit lift (``behaviour.py``) that depends on the shopper and the
cart value. Scenarios (``scenarios.py``) move the conditions over time; the oracle (``oracle.py``) gives
every offer's expected reward at each decision point. ``Simulation`` (``simulation.py``) merges it all
into one lazy, event-time-ordered stream, open or closed loop (``closed_loop.py``); ``simulate_to_file``
(``files.py``) writes it to JSON Lines.

Every event carries ``event_id`` (``{session_id}-{k}``), ``ts`` (epoch ms, UTC), ``user_id``, ``session_id``,
``type``, ``device`` and ``referrer``; product events add ``product_id``, ``category`` and ``price``; cart
events ``quantity`` and ``cart_value``; ``purchase`` adds ``revenue`` (the order value before any discount)
and, for 90% of purchases that followed an offer, the ``decision_id`` passed to ``respond``. Decision points
are a session's first ``add_to_cart`` and its ``checkout_start`` while it has seen no offer.

>>> sim = Simulation(scenario="stationary", days=1, users=100, seed=7)
>>> events = []
>>> while (ev := sim.next_event()) is not None:
...     events.append(ev)
>>> sim.stats()["events"] == len(events)
True
"""

from stream.simulator.in_process_loop import closed_loop_run
from stream.simulator.scenarios import SCENARIOS, Conditions, Scenario, get_scenario
from stream.simulator.simulation import Simulation
from stream.simulator.to_file import simulate_to_file

__all__ = [
    "SCENARIOS",
    "Conditions",
    "Scenario",
    "Simulation",
    "closed_loop_run",
    "get_scenario",
    "simulate_to_file",
]
