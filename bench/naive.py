"""The naive pipeline ``make bench`` measures beside ours, so that the speed-up is visible.

What a first implementation does, one event at a time:

* **single-row snapshot scoring**: the batch is one record, so the XGBoost snapshot scores each decision point
  on its own (ours scores all of a batch's decision points in one call);
* **a matrix inverse per Thompson draw**: :class:`NaiveLinearThompson` inverts the d × d precision matrix at
  every decision and draws whole coefficient vectors from the d-dimensional normal (``mc_samples`` of them, for
  the propensities), where ours draws the K offers' rewards from their K-dimensional joint predictive through
  one triangular solve on the factor it keeps (see :mod:`bandits.linear_model`).

Everything else (parsing, state, features, the River learners, learning the rewards) is the same code. The
draws differ, so its decisions are not ours: it is a yardstick for speed, not a policy to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bandits.factory import linear_kwargs
from bandits.linear_thompson import LinearThompson
from stream.app.build import build_processor, load_promoted
from stream.app.settings import Settings
from stream.core.records import OutputKind
from stream.engine.pipeline import PipelineStats, run_pipeline
from stream.engine.processor import Processor
from stream.io.file_sink import FileSink
from stream.io.file_source import FileSource


class NaiveLinearThompson(LinearThompson):
    """Linear TS the textbook way: invert the precision matrix, draw coefficient vectors, score every offer."""

    name = "naive_linear_thompson"

    def win_probabilities(
        self, context: Mapping[str, float], offers: Sequence[str], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self._design(context, offers)
        posterior = self._posterior
        shape, scale = posterior.noise()
        factor = posterior._r  # the precision matrix is RᵀR; the naive way forms and inverts it
        covariance = (scale / shape) * self.exploration**2 * np.linalg.inv(factor.T @ factor)
        thetas = rng.multivariate_normal(posterior.mean, covariance, size=self.mc_samples)
        values = self.values(context, offers)
        draws = self.to_reward(thetas @ rows.T, values)
        wins = np.bincount(draws.argmax(axis=1), minlength=len(offers))
        return wins / self.mc_samples, self.to_reward(rows @ posterior.mean, values)


def naive_replay(events: Path, settings: Settings, workdir: Path) -> tuple[Processor, PipelineStats]:
    """Replay ``events`` one record per batch with :class:`NaiveLinearThompson`; the core (its stage clock) and
    the pipeline's stats."""
    core = build_processor(settings, load_promoted(settings))
    core.policy = NaiveLinearThompson(exploration=settings.policy.exploration, **linear_kwargs(settings.policy))
    sink = FileSink({OutputKind.DECISION: workdir / "naive-decisions.jsonl", OutputKind.DEAD_LETTER: None})
    try:
        stats = run_pipeline(FileSource([events]), core, sink, batch_size=1)
    finally:
        sink.close()
    return core, stats
