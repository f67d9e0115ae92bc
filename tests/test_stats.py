"""wmlib.stats: intervals with the coverage they claim, exact paired tests, verdicts that follow them."""

import numpy as np
import pytest

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
