"""Deciding: the bandit policies, offers and rewards, eligibility, and off-policy evaluation (ope)."""
