"""Bayesian linear regression of an offer's reward on its context, kept as a factorisation updated one row at a time.

The model is the Normal-Inverse-Gamma conjugate: ``reward = θ·x + ε``, ``ε ~ N(0, σ²)``, ``θ | σ² ~ N(μ0, σ² A0⁻¹)``,
``σ² ~ InvGamma(a0, b0)``. The posterior keeps the precision ``A = Σ w x xᵀ + A0`` as its upper Cholesky factor
``R`` (``A = RᵀR``); a new observation is a rank-one update of ``R`` (:func:`scipy.linalg.qr_insert` appends
the row ``√w·xᵀ`` to ``R`` and re-triangularises it with Givens rotations, O(d²)), never a matrix inverse. After
each update the mean ``μ = A⁻¹ Σ w r x`` comes from two triangular solves; a decision needs ``Z μ`` and, for
the offers' rows ``Z``, ``V = R⁻ᵀ Zᵀ`` (one triangular solve), since ``Z A⁻¹ Zᵀ = VᵀV``.

**The prior as pseudo-observations.** ``N(μ0, σ² (λI)⁻¹)`` is exactly ``d`` observations ``(x = e_k, r = μ0[k])``
of weight ``λ``; starting ``R = √λ·I``, ``Σ w r x = λ μ0``, ``Σ w r² = λ‖μ0‖²`` makes every later formula the plain
weighted least-squares one, including the noise scale ``b = b0 + ½(Σ w r² − μᵀA μ)``.

**Forgetting (a sliding prior).** So that the posterior can follow drift, every statistic decays by ``γ`` per
reward the policy receives (``γ = 2^(−1/half_life)``). Decay alone would let the precision of rarely seen
directions shrink to nothing; the decayed prior mass ``(1 − γ)λ`` is therefore owed back on every axis and
re-injected as
pseudo-observations, one axis per update in rotation (each a rank-one update), so the prior keeps weight ``λ`` in
the steady state. At any moment the posterior is the exact conjugate posterior of the decayed data plus the
pseudo-observations injected so far; what is still owed (at most ``d`` updates' worth) is not yet counted.
:meth:`LinearPosterior.settled` counts it: the decayed data plus the whole prior.

**Lessons (a fleet's shared posterior).** Beside the factor the posterior keeps the data's statistics since the
last lesson (``Σ w x xᵀ``, ``Σ w r x``, ``Σ w r²``, ``Σ w``, decayed like the rest): :meth:`take_lesson` hands them
over and :meth:`fold` adds another worker's, after ageing by the lesson's forgetting. The statistics are sums,
so a posterior that learned one half of a stream and folded the other half's lesson settles to exactly the
posterior of the whole (the re-factorisation is one Cholesky decomposition, O(d³), per fold).

>>> import numpy as np
>>> post = LinearPosterior(dim=2, prior_precision=1.0, prior_shape=2.0, prior_scale=1.0)
>>> rng = np.random.default_rng(0)
>>> for _ in range(500):
...     x = np.array([1.0, rng.normal()])
...     post.update(x, 3.0 + 2.0 * x[1] + 0.1 * rng.normal())
>>> post.mean.round(1).tolist()
[3.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import qr_insert
from scipy.linalg.blas import dtrsm, dtrsv

NORMAL_DOF = 30.0  # above this many degrees of freedom the Student-t predictive is drawn as a normal


class LinearPosterior:
    """The posterior: factor ``R``, sufficient statistics, and the cached mean."""

    _lesson_a: np.ndarray  # the data's statistics since the last lesson (see _start_lesson)
    _lesson_xr: np.ndarray

    def __init__(
        self,
        dim: int,
        prior_precision: float = 1.0,
        prior_shape: float = 2.0,
        prior_scale: float = 25.0,
        prior_mean: np.ndarray | None = None,
    ) -> None:
        self.dim = dim
        self.prior_precision = prior_precision
        self.prior_shape = prior_shape
        self.prior_scale = prior_scale
        self.prior_mean = np.zeros(dim) if prior_mean is None else np.asarray(prior_mean, dtype=float)
        lam = prior_precision
        self._lam = np.full(dim, lam)  # prior precision per coefficient (blocks added by grow may differ)
        self._r = np.sqrt(lam) * np.eye(dim)
        self._xr = lam * self.prior_mean  # Σ w r x, prior pseudo-observations included
        self._rr = lam * float(self.prior_mean @ self.prior_mean)  # Σ w r²
        self._n = 0.0  # decayed count of real observations (the prior counts towards A, not towards σ²)
        self._owed = np.zeros(dim)  # prior mass decayed away and not yet re-injected, per axis
        self._axis = 0  # next axis to re-inject
        self.updates = 0
        self._eye = np.eye(dim)  # qr_insert's Q (it does not overwrite it): built when the dimension changes
        self._start_lesson()
        self._refresh()

    # -- reading -------------------------------------------------------------------------------------
    @property
    def mean(self) -> np.ndarray:
        return self._mean

    def noise(self) -> tuple[float, float]:
        """(shape a, scale b) of the noise variance's inverse-gamma posterior."""
        residual = max(self._rr - float(self._xr @ self._mean), 0.0)
        return self.prior_shape + 0.5 * self._n, self.prior_scale + 0.5 * residual

    def predictive_joint(self, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """For rows ``zs`` (one per offer): the posterior mean rewards, the scale matrix of their joint
        Student-t (the rows share the coefficients, so their draws are correlated), and its dof."""
        a, b = self.noise()
        # Vᵀ = Z R⁻¹ (BLAS trsm: scipy's solve_triangular costs ~10× as much on these sizes), Z A⁻¹ Zᵀ = Vᵀ V
        vt = dtrsm(1.0, self._r, zs, side=1, lower=0)
        return zs @ self._mean, (b / a) * (vt @ vt.T), 2.0 * a

    def grow(self, extra: int, prior_mean: np.ndarray | None = None, precision: float | None = None) -> None:
        """Append ``extra`` coefficients with the prior alone (mean ``prior_mean``, precision ``precision``): no
        observation so far involved them, so the factor gains an independent diagonal block (exact)."""
        if extra <= 0:
            return
        mean0 = np.zeros(extra) if prior_mean is None else np.asarray(prior_mean, dtype=float)
        lam = self.prior_precision if precision is None else precision
        self._lam = np.concatenate([self._lam, np.full(extra, lam)])
        dim = self.dim + extra
        r = np.zeros((dim, dim))
        r[: self.dim, : self.dim] = self._r
        r[self.dim :, self.dim :] = np.sqrt(lam) * np.eye(extra)
        self._r = r
        self._xr = np.concatenate([self._xr, lam * mean0])
        self._rr += lam * float(mean0 @ mean0)
        self._owed = np.concatenate([self._owed, np.zeros(extra)])
        lesson_a = np.zeros((dim, dim))
        lesson_a[: self.dim, : self.dim] = self._lesson_a
        self._lesson_a = lesson_a
        self._lesson_xr = np.concatenate([self._lesson_xr, np.zeros(extra)])
        self.prior_mean = np.concatenate([self.prior_mean, mean0])
        self.dim = dim
        self._eye = np.eye(dim)
        self._refresh()

    # -- learning ------------------------------------------------------------------------------------
    def decay(self, factor: float) -> None:
        """Forget: every statistic times ``factor`` (0 < factor ≤ 1); the decayed prior mass is owed back."""
        if factor >= 1.0:
            return
        self._r *= np.sqrt(factor)
        self._xr *= factor
        self._rr *= factor
        self._n *= factor
        self._owed = factor * self._owed + (1.0 - factor) * self._lam
        self._lesson_a *= factor
        self._lesson_xr *= factor
        self._lesson_rr *= factor
        self._lesson_n *= factor

    def update(self, x: np.ndarray, reward: float, weight: float = 1.0) -> None:
        """Learn one observation: re-inject one axis of owed prior, then the rank-one update with ``x``."""
        k = self._axis
        owed = float(self._owed[k])
        if owed > 0.0:
            self._add_row(np.sqrt(owed) * _unit(self.dim, k))
            self._xr[k] += owed * self.prior_mean[k]
            self._rr += owed * float(self.prior_mean[k]) ** 2
            self._owed[k] = 0.0
        self._axis = (k + 1) % self.dim
        x = np.asarray(x, dtype=float)
        self._add_row(np.sqrt(weight) * x)
        self._xr += weight * reward * x
        self._rr += weight * reward * reward
        self._n += weight
        self._lesson_a += weight * np.outer(x, x)
        self._lesson_xr += weight * reward * x
        self._lesson_rr += weight * reward * reward
        self._lesson_n += weight
        self.updates += 1
        self._refresh()

    # -- sharing -------------------------------------------------------------------------------------
    def _start_lesson(self) -> None:
        self._lesson_a = np.zeros((self.dim, self.dim))
        self._lesson_xr = np.zeros(self.dim)
        self._lesson_rr = 0.0
        self._lesson_n = 0.0

    def take_lesson(self) -> dict[str, Any]:
        """The data's statistics since the last lesson (``a`` = Σ w x xᵀ, ``xr``, ``rr``, ``n``), and start anew."""
        lesson = {"a": self._lesson_a, "xr": self._lesson_xr, "rr": self._lesson_rr, "n": self._lesson_n}
        self._start_lesson()
        return lesson

    def fold(
        self, factor: float, a: np.ndarray, xr: np.ndarray, rr: float, n: float, updates: int, index: np.ndarray
    ) -> None:
        """Age by ``factor``, then add another posterior's lesson whose coefficient ``j`` is this one's
        ``index[j]``: the precision by one Cholesky decomposition of ``RᵀR + a``, the moments by addition."""
        self.decay(factor)
        precision = self._r.T @ self._r
        precision[np.ix_(index, index)] += a
        self._r = np.linalg.cholesky(precision).T.copy()
        self._xr[index] += xr
        self._rr += rr
        self._n += n
        self.updates += updates
        self._refresh()

    def adopt(self, other: LinearPosterior, keep: np.ndarray) -> None:
        """Become ``other`` restricted to its coefficients ``keep`` (this posterior's columns, in order): the
        statistics a posterior would hold had the other coefficients never been in the model (the precision's
        and moments' kept rows, the dropped coefficients' prior taken out of Σ w r²; exact)."""
        if len(keep) != self.dim:
            raise ValueError(f"keeping {len(keep)} coefficients of {other.dim} for a posterior of {self.dim}")
        precision, xr, rr, n = other.settled()
        dropped = np.setdiff1d(np.arange(other.dim), keep)
        self._r = np.linalg.cholesky(precision[np.ix_(keep, keep)]).T.copy()
        self._lam = other._lam[keep].copy()
        self._xr = xr[keep].copy()
        self._rr = rr - float(other._lam[dropped] @ other.prior_mean[dropped] ** 2)
        self._n = n
        self._owed = np.zeros(self.dim)
        self._axis = 0
        self.updates = other.updates
        self._start_lesson()
        self._refresh()

    def learned(self) -> dict[str, Any]:
        """The data's statistics, decayed, without the prior: what :meth:`take_lesson` would hold had it been
        kept since the start (a posterior that knows nothing becomes this one, settled, by folding them)."""
        precision, xr, rr, n = self.settled()
        lam = self._lam
        return {
            "a": precision - np.diag(lam),
            "xr": xr - lam * self.prior_mean,
            "rr": rr - float(lam @ self.prior_mean**2),
            "n": n,
        }

    def settled(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(precision, Σ w r x, Σ w r², Σ w) with the prior owed back counted in: the decayed data plus the whole
        prior, whatever the order in which the owed prior mass was re-injected."""
        owed = self._owed
        precision = self._r.T @ self._r + np.diag(owed)
        return precision, self._xr + owed * self.prior_mean, self._rr + float(owed @ self.prior_mean**2), self._n

    def _add_row(self, row: np.ndarray) -> None:
        _, r = qr_insert(self._eye, self._r, row, self.dim, which="row", check_finite=False)
        self._r = r[: self.dim]

    def _refresh(self) -> None:
        # μ = A⁻¹ Σ w r x = R⁻¹(R⁻ᵀ Σ w r x): two triangular solves (BLAS trsv)
        half = dtrsv(self._r, self._xr, lower=0, trans=1)
        self._mean = dtrsv(self._r, half, lower=0, trans=0)

    # -- state ---------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "r": self._r.tolist(),
            "precision": self._lam.tolist(),
            "xr": self._xr.tolist(),
            "rr": self._rr,
            "n": self._n,
            "owed": self._owed.tolist(),
            "axis": self._axis,
            "updates": self.updates,
        }

    def restore(self, state: dict[str, Any]) -> None:
        r = np.asarray(state["r"], dtype=float)
        if r.shape != (self.dim, self.dim):
            raise ValueError(f"posterior of dimension {r.shape}, expected {(self.dim, self.dim)}")
        self._r = r
        self._lam = np.asarray(state["precision"], dtype=float)
        self._xr = np.asarray(state["xr"], dtype=float)
        self._rr = float(state["rr"])
        self._n = float(state["n"])
        self._owed = np.asarray(state["owed"], dtype=float)
        self._axis = int(state["axis"])
        self.updates = int(state["updates"])
        self._start_lesson()
        self._refresh()


def _unit(dim: int, k: int) -> np.ndarray:
    e = np.zeros(dim)
    e[k] = 1.0
    return e


def draw_joint(means: np.ndarray, scale: np.ndarray, dof: float, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``samples`` draws (rows) of the offers' rewards (columns) from their joint Student-t predictive.

    A multivariate t is a multivariate normal divided by ``sqrt(χ²_ν / ν)``, one divisor per draw; above
    :data:`NORMAL_DOF` degrees of freedom the divisor is left out (the t is within 1 % of the normal there).
    """
    k = means.size
    jitter = 1e-12 * (float(np.trace(scale)) / k + 1e-300)
    try:
        factor = np.linalg.cholesky(scale + jitter * np.eye(k))
    except np.linalg.LinAlgError:  # rank-deficient scale (e.g. an offer with no value at stake): via eigenvalues
        values, vectors = np.linalg.eigh(scale)
        factor = vectors * np.sqrt(np.clip(values, 0.0, None))
    draws = rng.standard_normal((samples, k)) @ factor.T
    if dof <= NORMAL_DOF:
        draws /= np.sqrt(rng.chisquare(dof, size=(samples, 1)) / dof)
    return means + draws
