"""Off-policy evaluation: what another policy would have earned on logged decisions.

``logs`` reads our decision/reward logs and the Open Bandit Dataset into one structure (:class:`LoggedRounds`),
``estimators`` holds IPW, SNIPW, DR and replay with bootstrap intervals, ``reward_model`` is DR's cross-fitted
reward model, ``obd`` finds the Open Bandit Dataset files and ``evaluate`` ties a target policy to all of them.
"""

from bandits.errors import OpeError
from bandits.ope.logged_rounds import LoggedRounds

__all__ = ["LoggedRounds", "OpeError"]
