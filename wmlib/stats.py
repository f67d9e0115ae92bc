"""Uncertainty for every number the book reports: intervals, paired tests, verdicts.

One home for the statistics the chapters use, a thin layer over SciPy:

- :func:`wilson`: a rate (k successes out of n) with its Wilson score interval;
- :func:`bootstrap_mean`: a mean with a percentile-bootstrap interval (resampling the items);
- :func:`paired_difference`: the mean difference of two conditions measured on the *same* items,
  with a paired-bootstrap interval and a sign-flip permutation p-value;
- :func:`mcnemar`: the exact McNemar test for two classifiers (or prompts) scored right/wrong on
  the same items;
- :func:`seed_spread`: results of several training seeds: mean, spread and a t interval;
- :func:`dprime`: the sensitivity d' of signal-detection theory (with the log-linear correction);
- :func:`compare`: a verdict sentence computed from a paired interval, never typed.

Items are often not independent: several draws of filler for the same fact, several questions about
the same dialogue. ``rate``, ``bootstrap_mean``, ``paired_difference`` and ``mcnemar`` take
``groups`` (one label per item; items with the same label form a cluster), and then resample whole
clusters, flip the signs of whole clusters and shrink Wilson's n to the effective sample size, so
that 20 facts x 3 draws are not counted as 60 independent trials.

Every result is an :class:`Estimate` (value, low, high), which formats itself for glued prose
(``est.text("{:.0%}")`` -> ``"62% (95% CI 55–69%)"``) and gives error bars (:func:`yerr`).
A claim is checked at the strength the prose states with ``est.above(x)`` / ``est.below(x)``
(the whole interval on one side of ``x``) rather than with the point estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "Estimate", "McNemar", "wilson", "rate", "bootstrap_mean", "paired_difference", "mcnemar",
    "seed_spread", "dprime", "differs", "compare", "yerr", "DEFAULT_CONFIDENCE",
]

DEFAULT_CONFIDENCE = 0.95


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _as_1d(values, name: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a sequence of numbers: {err}") from None
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to estimate")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values (first at index {int(np.argmin(np.isfinite(x)))})")
    return x


def _clusters(groups, n: int, name: str = "groups") -> np.ndarray:
    """One integer cluster index per item (0 .. G-1) from any hashable labels."""
    if isinstance(groups, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of labels, one per item, got the string {groups!r}")
    try:
        labels = list(groups)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of labels, one per item, got {type(groups).__name__}") from None
    if len(labels) != n:
        raise ValueError(f"{name} must give one label per item: {len(labels)} labels for {n} items")
    index: dict = {}
    try:
        return np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)
    except TypeError as err:
        raise ValueError(f"{name} must hold hashable labels (numbers, strings, tuples): {err}") from None


def _cluster_bootstrap(x: np.ndarray, cluster: np.ndarray, confidence: float, n_boot: int, seed: int) -> Estimate:
    """The mean of ``x`` with a percentile interval from resampling whole clusters."""
    sums, counts = np.bincount(cluster, weights=x), np.bincount(cluster)
    value, n_groups = float(x.mean()), sums.size
    if n_groups == 1 or np.all(x == x[0]):  # nothing varies between resamples
        return Estimate(value, value, value, int(x.size), "cluster bootstrap", confidence,
                        extra={"clusters": int(n_groups)})
    pick = np.random.default_rng(seed).integers(0, n_groups, size=(n_boot, n_groups))
    boot = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = (float(v) for v in np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2]))
    return Estimate(value, min(lo, value), max(hi, value), int(x.size), "cluster bootstrap", confidence,
                    extra={"clusters": int(n_groups)})


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval [low, high].

    ``n`` is the number of items (or seeds) behind it; ``method`` names the interval;
    ``p_value`` is set by tests (paired differences, McNemar).
    """

    value: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = DEFAULT_CONFIDENCE
    p_value: float | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not (self.low <= self.value + 1e-12 and self.value <= self.high + 1e-12):
            raise ValueError(f"interval [{self.low}, {self.high}] does not contain the estimate {self.value}")

    # claims at the strength the prose states
    def above(self, x: float) -> bool:
        """The whole interval lies above ``x``."""
        return self.low > x

    def below(self, x: float) -> bool:
        """The whole interval lies below ``x``."""
        return self.high < x

    def excludes(self, x: float) -> bool:
        return self.above(x) or self.below(x)

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def interval(self, fmt: str = "{:.2f}") -> str:
        """``"0.55-0.69"`` (an en dash), with ``fmt`` applied to both ends; a percent sign shows once."""
        lo, hi = fmt.format(self.low), fmt.format(self.high)
        if lo.endswith("%") and hi.endswith("%"):
            lo = lo[:-1]
        return f"{lo}\u2013{hi}"

    def text(self, fmt: str = "{:.2f}", ci: bool = True) -> str:
        """``"0.62 (95% CI 0.55-0.69)"``; ``ci=False`` gives ``"0.62 (0.55-0.69)"``."""
        label = f"{self.confidence:.0%} CI " if ci else ""
        return f"{fmt.format(self.value)} ({label}{self.interval(fmt)})"

    def __str__(self) -> str:
        return self.text()

    def to_dict(self) -> dict:
        out = {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "method": self.method,
               "confidence": self.confidence}
        if self.p_value is not None:
            out["p_value"] = self.p_value
        out.update(self.extra)
        return out


# ------------------------------------------------------------------------------------- rates
def _normal_quantile(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def wilson(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """The rate k/n with its Wilson score interval (good for small n and rates near 0 or 1)."""
    confidence = _check_confidence(confidence)
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an int, got {type(v).__name__}: {v!r}")
    k, n = int(k), int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1 (a rate needs trials), got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, n={n}], got {k}")
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(k / n, float(ci.low), float(ci.high), n, "Wilson", confidence)


def rate(outcomes: Sequence[bool], confidence: float = DEFAULT_CONFIDENCE, groups: Sequence | None = None) -> Estimate:
    """The fraction of true outcomes, with its Wilson interval.

    With ``groups`` (one cluster label per outcome), Wilson's interval is computed at the effective
    sample size n / deff (Kish's design effect: the cluster-robust variance of the rate over the
    binomial one), kept between the number of clusters and the number of outcomes; at a rate of 0
    or 1, where the data cannot tell how alike a cluster's outcomes are, n is the number of clusters.
    (Korn and Graubard, 1998, make the same substitution of an effective n in an exact binomial
    interval for clustered survey data.)
    """
    x = _as_1d([bool(o) for o in outcomes] if len(outcomes) else [], "outcomes")
    if groups is None:
        return wilson(int(x.sum()), int(x.size), confidence)
    confidence = _check_confidence(confidence)
    cluster = _clusters(groups, x.size)
    sums, counts = np.bincount(cluster, weights=x), np.bincount(cluster)
    n, n_groups, p = int(x.size), int(sums.size), float(x.mean())
    if 0 < p < 1 and n_groups > 1:
        robust = n_groups / (n_groups - 1) * float(np.sum((sums - p * counts) ** 2)) / n**2
        n_eff = min(float(n), max(float(n_groups), p * (1 - p) / robust if robust > 0 else float(n)))
    else:
        n_eff = float(n_groups)
    z = float(_normal_quantile(0.5 + confidence / 2))
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z / (1 + z * z / n_eff) * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff**2))
    return Estimate(p, max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p)), n,
                    "Wilson, clustered", confidence, extra={"clusters": n_groups, "n_effective": n_eff})


# ------------------------------------------------------------------------------------- means
def bootstrap_mean(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE, n_boot: int = 2000,
                   seed: int = 0, statistic: Callable[[np.ndarray], float] | None = None,
                   groups: Sequence | None = None) -> Estimate:
    """The mean of ``values`` (or ``statistic``) with a percentile-bootstrap interval over the items.

    Deterministic given ``seed``. With a single value, or all values equal, the interval is the
    point itself (there is no sampling variation to show). With ``groups`` (one cluster label per
    value), whole clusters are resampled (the mean only).
    """
    confidence = _check_confidence(confidence)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    x = _as_1d(values, "values")
    if groups is not None:
        if statistic is not None:
            raise ValueError("groups (a cluster bootstrap) works for the mean only; leave statistic unset")
        return _cluster_bootstrap(x, _clusters(groups, x.size), confidence, n_boot, seed)
    value = float(x.mean()) if statistic is None else float(statistic(x))
    if x.size == 1 or np.all(x == x[0]):
        return Estimate(value, value, value, int(x.size), "bootstrap", confidence)
    from scipy.stats import bootstrap

    fn = (lambda a, axis=-1: a.mean(axis=axis)) if statistic is None else statistic
    res = bootstrap((x,), fn, vectorized=statistic is None, n_resamples=n_boot, confidence_level=confidence,
                    method="percentile", rng=np.random.default_rng(seed),
                    batch=max(1, 4_000_000 // x.size))  # bounded memory for tens of thousands of items
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Estimate(value, min(lo, value), max(hi, value), int(x.size), "bootstrap", confidence)


def _sign_flip_p(xa: np.ndarray, xb: np.ndarray, n_perm: int, seed: int) -> float:
    """Two-sided p-value of the sign-flip permutation test of mean(xa - xb) = 0, the pairs being
    exchangeable (exact when 2^n <= n_perm)."""
    if np.all(xa == xb):
        return 1.0
    from scipy.stats import permutation_test

    # permuting within pairs = flipping the sign of each difference
    res = permutation_test((xa, xb), lambda u, v, axis=-1: (u - v).mean(axis=axis), vectorized=True,
                           permutation_type="samples", n_resamples=n_perm, rng=np.random.default_rng(seed + 1),
                           batch=max(1, 4_000_000 // xa.size))  # bounded memory for many items
    return float(res.pvalue)


def _sign_flip_p_counts(t: np.ndarray) -> float:
    """Exact two-sided p-value of the sign-flip test for integer cluster totals ``t``: the chance that
    sum(sign_g * t_g), each sign +1 or -1 at random, is at least as far from 0 as sum(t). With every
    total in {-1, 0, 1} this is McNemar's exact (binomial) test."""
    observed = abs(int(t.sum()))
    t = np.abs(t[t != 0]).astype(np.int64)
    if t.size == 0:
        return 1.0
    reach = int(t.sum())
    dist = np.zeros(2 * reach + 1)
    dist[reach] = 1.0
    for v in t:  # the sums reached so far never exceed `reach`, so rolling never wraps around
        dist = 0.5 * (np.roll(dist, v) + np.roll(dist, -v))
    return float(min(1.0, dist[np.abs(np.arange(-reach, reach + 1)) >= observed].sum()))


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = DEFAULT_CONFIDENCE,
                      n_boot: int = 2000, n_perm: int = 10000, seed: int = 0, groups: Sequence | None = None) -> Estimate:
    """mean(a - b) for two conditions measured on the same items, with a paired-bootstrap interval
    and the two-sided p-value of a sign-flip permutation test (exact for up to 13 items).

    ``a[i]`` and ``b[i]`` must come from the same item (the same prompt, sequence or example). With
    ``groups`` (one cluster label per item) the bootstrap resamples whole clusters and the test flips
    the sign of each cluster's summed difference.
    """
    xa, xb = _as_1d(a, "a"), _as_1d(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"a and b must be paired item by item: {xa.size} vs {xb.size} values")
    d = xa - xb
    if groups is None:
        est, p = bootstrap_mean(d, confidence, n_boot, seed), _sign_flip_p(xa, xb, n_perm, seed)
    else:
        cluster = _clusters(groups, d.size)
        est = bootstrap_mean(d, confidence, n_boot, seed, groups=cluster)
        p = _sign_flip_p(np.bincount(cluster, weights=xa), np.bincount(cluster, weights=xb), n_perm, seed)
    return Estimate(est.value, est.low, est.high, est.n,
                    "paired bootstrap" if groups is None else "paired cluster bootstrap", est.confidence, p_value=p,
                    extra={"mean_a": float(xa.mean()), "mean_b": float(xb.mean()), **est.extra})


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: ``only_a`` items right under A only, ``only_b`` under B only."""

    only_a: int
    only_b: int
    n: int
    p_value: float
    difference: Estimate  # accuracy(A) - accuracy(B), paired-bootstrap interval, McNemar's p-value


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool], confidence: float = DEFAULT_CONFIDENCE,
            seed: int = 0, groups: Sequence | None = None) -> McNemar:
    """Compare two right/wrong scorings of the same items: the exact (binomial) McNemar test on the
    discordant pairs, and the accuracy difference A - B with a paired-bootstrap interval that
    carries McNemar's p-value (so :func:`compare` gives its verdict; fast for many thousands of items).

    With ``groups`` (one cluster label per item), items of a cluster are not independent: the test
    flips the sign of each cluster's count of (A only) - (B only), which is McNemar's exact test when
    every cluster holds one item, and the interval resamples whole clusters."""
    from scipy.stats import binomtest

    xa = _as_1d([bool(v) for v in a_correct] if len(a_correct) else [], "a_correct")
    xb = _as_1d([bool(v) for v in b_correct] if len(b_correct) else [], "b_correct")
    if xa.shape != xb.shape:
        raise ValueError(f"a_correct and b_correct must be paired item by item: {xa.size} vs {xb.size}")
    only_a = int(np.sum((xa == 1) & (xb == 0)))
    only_b = int(np.sum((xa == 0) & (xb == 1)))
    if groups is None:
        p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
        est = bootstrap_mean(xa - xb, confidence, seed=seed)
        method = "paired bootstrap"
    else:
        cluster = _clusters(groups, xa.size)
        p = _sign_flip_p_counts(np.rint(np.bincount(cluster, weights=xa - xb)).astype(np.int64))
        est = bootstrap_mean(xa - xb, confidence, seed=seed, groups=cluster)
        method = "paired cluster bootstrap"
    diff = Estimate(est.value, est.low, est.high, est.n, method, est.confidence, p_value=p,
                    extra={"mean_a": float(xa.mean()), "mean_b": float(xb.mean()), **est.extra})
    return McNemar(only_a, only_b, int(xa.size), p, diff)


# ------------------------------------------------------------------------------------- seeds
def seed_spread(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Results of several independent seeds: their mean with a t interval; ``extra`` holds the
    minimum, maximum and standard deviation (the spread a figure should show)."""
    from scipy.stats import t as student_t

    confidence = _check_confidence(confidence)
    x = _as_1d(values, "values")
    mean = float(x.mean())
    extra = {"min": float(x.min()), "max": float(x.max()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0}
    if x.size == 1:
        return Estimate(mean, mean, mean, 1, "one seed", confidence, extra=extra)
    half = float(student_t.ppf(0.5 + confidence / 2, x.size - 1) * extra["sd"] / math.sqrt(x.size))
    return Estimate(mean, mean - half, mean + half, int(x.size), "t over seeds", confidence, extra=extra)


# ------------------------------------------------------------------------------------- d'
def dprime(hits: int, misses: int, false_alarms: int, correct_rejections: int) -> float:
    """Sensitivity d' = z(hit rate) - z(false-alarm rate), with the log-linear correction (add 0.5
    to every cell; Hautus 1995) so that rates of 0 or 1 give a finite value. 0 is chance."""
    from scipy.stats import norm

    cells = {"hits": hits, "misses": misses, "false_alarms": false_alarms, "correct_rejections": correct_rejections}
    for name, v in cells.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if hits + misses == 0 or false_alarms + correct_rejections == 0:
        raise ValueError("d' needs at least one signal trial (hits + misses) and one noise trial "
                         "(false alarms + correct rejections)")
    h = (hits + 0.5) / (hits + misses + 1)
    f = (false_alarms + 0.5) / (false_alarms + correct_rejections + 1)
    return float(norm.ppf(h) - norm.ppf(f))


# ------------------------------------------------------------------------------------- verdicts
def differs(diff: Estimate) -> int:
    """+1 if ``diff`` (A - B) is detectably above 0, -1 if below, 0 otherwise (the rule of :func:`compare`)."""
    significant = diff.p_value is None or diff.p_value < 1 - diff.confidence
    return (1 if diff.above(0) else -1 if diff.below(0) else 0) if significant else 0


def compare(diff: Estimate, a: str, b: str, fmt: str = "{:+.2f}", higher: str = "higher",
            lower: str = "lower") -> str:
    """A verdict sentence computed from a paired difference ``diff`` (A - B).

    "A is higher than B (difference +0.12, 95% CI +0.05 to +0.19, p = 0.003)" when the interval
    excludes 0 and, where the estimate carries a test, its p-value is below 1 - confidence (the
    percentile bootstrap alone is too narrow for a handful of items); otherwise "A and B do not
    differ detectably (...)".
    """
    ci = f"difference {fmt.format(diff.value)}, {diff.confidence:.0%} CI {fmt.format(diff.low)} to {fmt.format(diff.high)}"
    if diff.p_value is not None:
        ci += f", p = {diff.p_value:.2g}"
    sign = differs(diff)
    if sign > 0:
        return f"{a} is {higher} than {b} ({ci})"
    if sign < 0:
        return f"{a} is {lower} than {b} ({ci})"
    return f"{a} and {b} do not differ detectably ({ci})"


def yerr(estimates: Sequence[Estimate], scale: float = 1.0) -> np.ndarray:
    """Error bars for matplotlib: a (2, N) array of distances below and above each estimate."""
    if not estimates:
        raise ValueError("no estimates")
    return np.array([[(e.value - e.low) * scale for e in estimates], [(e.high - e.value) * scale for e in estimates]])
