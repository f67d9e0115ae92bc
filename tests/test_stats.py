"""wmlib.stats: intervals with the coverage they claim, exact paired tests, verdicts that follow them."""

import numpy as np
import pytest

from wmlib import stats

from wmlib.stats import (
    Estimate, bootstrap_mean, compare, differs, dprime, mcnemar, paired_difference, rate, seed_spread, wilson, yerr,
)


def test_wilson_known_values_and_edges():
    e = wilson(0, 10)
    assert e.value == 0 and e.low == 0 and e.high == pytest.approx(0.2775, abs=1e-4)  # Wilson, not Wald's [0, 0]
    e = wilson(10, 10)
    assert e.high == 1 and e.low == pytest.approx(0.7225, abs=1e-4)
    e = wilson(3, 10)
    assert e.low == pytest.approx(0.1078, abs=1e-4) and e.high == pytest.approx(0.6032, abs=1e-4)
    assert rate([True, False, True, True]).value == 0.75


def test_wilson_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    for p, n in [(0.3, 50), (0.05, 40), (0.9, 20)]:
        ks = rng.binomial(n, p, size=2000)
        covered = np.mean([wilson(int(k), n).contains(p) for k in ks])
        assert 0.91 <= covered <= 0.99, (p, n, covered)


def test_bootstrap_mean_is_deterministic_and_covers():
    x = np.random.default_rng(1).normal(2.0, 1.0, size=60)
    a, b = bootstrap_mean(x, seed=3), bootstrap_mean(x, seed=3)
    assert a == b and a.low < x.mean() < a.high
    assert a.value == pytest.approx(x.mean())
    rng = np.random.default_rng(2)
    covered = np.mean([bootstrap_mean(rng.normal(0, 1, 40), n_boot=500, seed=i).contains(0) for i in range(300)])
    assert 0.88 <= covered <= 0.99
    const = bootstrap_mean([0.5] * 7)
    assert (const.low, const.value, const.high) == (0.5, 0.5, 0.5)


def test_paired_difference_exact_p_matches_enumeration():
    a, b = [3.0, 2.5, 4.0, 1.0, 2.0], [1.0, 2.0, 3.0, 1.5, 0.0]
    d = np.subtract(a, b)
    signs = np.array(np.meshgrid(*[[-1, 1]] * 5)).reshape(5, -1).T
    exact = np.mean(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12)
    est = paired_difference(a, b)
    assert est.p_value == pytest.approx(exact)
    assert est.value == pytest.approx(d.mean())
    assert paired_difference([1, 2], [1, 2]).p_value == 1.0


def test_paired_difference_finds_a_shift_that_unpaired_noise_hides():
    rng = np.random.default_rng(0)
    item = rng.normal(0, 5, size=50)  # large between-item variation
    a, b = item + 0.5 + rng.normal(0, 0.3, 50), item + rng.normal(0, 0.3, 50)
    est = paired_difference(a, b)
    assert est.above(0) and est.p_value < 0.001 and differs(est) == 1


def test_mcnemar_counts_discordant_pairs():
    m = mcnemar([1, 1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0, 1])
    assert (m.only_a, m.only_b, m.n) == (5, 0, 7)
    assert m.p_value == pytest.approx(2 * 0.5 ** 5)
    assert mcnemar([1, 0], [1, 0]).p_value == 1.0


def test_seed_spread_and_dprime():
    s = seed_spread([0.9, 0.8, 1.0])
    assert s.value == pytest.approx(0.9) and s.low < 0.8 and s.high > 1.0  # t with 2 d.f. is wide
    assert s.extra["min"] == 0.8 and s.extra["max"] == 1.0
    assert seed_spread([0.7]).low == 0.7
    assert dprime(25, 25, 25, 25) == pytest.approx(0.0)
    assert dprime(50, 0, 0, 50) > 4 and np.isfinite(dprime(50, 0, 0, 50))
    assert dprime(0, 50, 50, 0) < -4


def test_verdicts_follow_the_interval_and_the_test():
    up = paired_difference([1.0] * 30, [0.0] * 15 + [1.0] * 15)
    assert "is higher than" in compare(up, "A", "B")
    same = paired_difference([0, 1, 0, 1, 1, 0], [1, 0, 0, 1, 0, 1])
    assert "do not differ detectably" in compare(same, "A", "B")
    # five items all favouring A: the bootstrap interval excludes 0 but the exact test cannot reach 5 %
    few = paired_difference([1.0, 2, 3, 4, 5], [0.0, 1, 2, 3, 4])
    assert few.above(0) and few.p_value > 0.05 and differs(few) == 0


def test_text_and_error_bars():
    e = wilson(62, 100)
    assert e.text("{:.0%}").startswith("62% (95% CI ") and e.text("{:.0%}").endswith("%)")
    assert "–" in e.interval()
    bars = yerr([e, wilson(1, 4)])
    assert bars.shape == (2, 2) and (bars >= 0).all()


@pytest.mark.parametrize("call, match", [
    (lambda: wilson(3, 0), "n must be at least 1"),
    (lambda: wilson(5, 3), "k must lie in"),
    (lambda: wilson(1.5, 3), "k must be an int"),
    (lambda: wilson(1, 3, confidence=95), "confidence"),
    (lambda: bootstrap_mean([]), "empty"),
    (lambda: bootstrap_mean([1.0, float("nan")]), "NaN"),
    (lambda: paired_difference([1, 2], [1, 2, 3]), "paired item by item"),
    (lambda: mcnemar([1], [1, 0]), "paired item by item"),
    (lambda: dprime(0, 0, 1, 1), "signal trial"),
    (lambda: dprime(-1, 2, 1, 1), "non-negative"),
    (lambda: yerr([]), "no estimates"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_estimate_refuses_an_interval_that_misses_its_point():
    with pytest.raises(ValueError, match="does not contain"):
        Estimate(0.5, 0.6, 0.7, 10, "x")


# ------------------------------------------------------------------ clustered items (groups)
def _triplicate(values):
    """Each item three times, as three filler draws of the same fact would be if draws did not matter."""
    return [v for v in values for _ in range(3)], [i for i in range(len(values)) for _ in range(3)]


def test_clustered_rate_does_not_count_copies_as_new_evidence():
    outcomes = [True] * 13 + [False] * 7
    tripled, groups = _triplicate(outcomes)
    plain, naive = stats.rate(outcomes), stats.rate(tripled)
    clustered = stats.rate(tripled, groups=groups)
    assert clustered.value == plain.value
    assert naive.high - naive.low < 0.7 * (plain.high - plain.low)  # pretends to know more
    assert clustered.extra["n_effective"] == pytest.approx(20, rel=0.1)  # 60 outcomes, 20 facts' worth
    assert clustered.low == pytest.approx(plain.low, abs=0.02) and clustered.high == pytest.approx(plain.high, abs=0.02)
    # one item per cluster: Wilson's interval (up to the G/(G-1) small-sample factor)
    single = stats.rate(outcomes, groups=range(20))
    assert single.low == pytest.approx(plain.low, abs=0.02) and single.high == pytest.approx(plain.high, abs=0.02)
    # a rate of 0 still has an upper bound, at the number of clusters
    none = stats.rate([False] * 60, groups=groups)
    assert none.value == 0 and none.high == pytest.approx(stats.wilson(0, 20).high)


def test_clustered_mcnemar_is_mcnemar_on_the_clusters():
    rng = np.random.default_rng(0)
    a, b = rng.random(24) < 0.7, rng.random(24) < 0.4
    plain = stats.mcnemar(a, b)
    (ta, groups), (tb, _) = _triplicate(list(a)), _triplicate(list(b))
    naive, clustered = stats.mcnemar(ta, tb), stats.mcnemar(ta, tb, groups=groups)
    assert naive.p_value < plain.p_value / 5  # copies make a naive test far too confident
    assert clustered.p_value == pytest.approx(plain.p_value, rel=1e-9)  # the sign test on the clusters
    assert clustered.difference.value == pytest.approx(plain.difference.value)
    assert clustered.difference.extra["clusters"] == 24
    # singletons: the cluster sign-flip test is McNemar's exact test
    assert stats.mcnemar(a, b, groups=range(24)).p_value == pytest.approx(plain.p_value, rel=1e-9)


def test_clustered_bootstrap_and_paired_difference():
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 1.0, 30)
    tripled, groups = _triplicate(list(x))
    plain, clustered = stats.bootstrap_mean(x, seed=3), stats.bootstrap_mean(tripled, seed=3, groups=groups)
    assert clustered.value == pytest.approx(plain.value)
    assert clustered.high - clustered.low == pytest.approx(plain.high - plain.low, rel=0.15)
    assert clustered.method == "cluster bootstrap" and clustered.extra["clusters"] == 30
    d = stats.paired_difference(tripled, [0.0] * 90, groups=groups)
    assert d.p_value == pytest.approx(stats.paired_difference(x, [0.0] * 30).p_value, rel=0.3, abs=0.01)
    assert stats.bootstrap_mean([1.0, 1.0, 1.0], groups=[0, 0, 1]).high == 1.0  # nothing varies


@pytest.mark.parametrize("call, message", [
    (lambda: stats.rate([True, False], groups=[0]), "one label per item"),
    (lambda: stats.rate([True, False], groups="ab"), "sequence of labels"),
    (lambda: stats.rate([True, False], groups=[[0], [1]]), "hashable"),
    (lambda: stats.bootstrap_mean([1.0, 2.0], groups=[0, 1], statistic=np.median), "mean only"),
    (lambda: stats.mcnemar([True], [False], groups=5), "sequence of labels"),
])
def test_bad_groups_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
