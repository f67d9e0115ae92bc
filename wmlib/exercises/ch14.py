"""Checkers for Chapter 14, "Measuring a model's working memory"."""

from __future__ import annotations

import math
import random

from ._core import ExerciseFailure, call, expect_close, expect_float, passed

__all__ = ["check_task", "check_dprime", "check_effective_length"]


# ------------------------------------------------------------------------------ 14.1 add a task
def check_task(task_class) -> bool:
    """Exercise 14.1: a ``Task`` subclass for passkey retrieval whose items are deterministic, fit
    their length, hide the key once, score on the key's digits only, and which an oracle answers
    perfectly and a coin never."""
    from ..probes import ProbeLM, Task, evaluate
    from ..probes.oracle import OracleLM, RandomLM, char_tokenizer

    ex = "Exercise 14.1 (add a task)"
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise ExerciseFailure(ex, f"expected a subclass of wmlib.probes.Task, got {task_class!r}")
    task = call(ex, task_class)
    tok = char_tokenizer()
    oracle = ProbeLM(OracleLM(task, tok), tok, name="oracle", device="cpu")
    settings = dict(lengths=[300, 600], depths=[0.0, 0.5, 1.0], limit=2)
    try:
        settings = task.settings(quick=True, **{k: v for k, v in settings.items() if k in task.QUICK})
    except ValueError as err:
        raise ExerciseFailure(ex, f"task.settings failed: {err}", "QUICK needs lengths, depths and limit") from None
    items = call(ex, task.items, oracle, settings, 0)
    again = call(ex, task.items, oracle, settings, 0)
    other = call(ex, task.items, oracle, settings, 1)
    if [i.user for i in items] != [i.user for i in again]:
        raise ExerciseFailure(ex, "the same seed gave different items", "draw everything from the rng you are given")
    if [i.user for i in items] == [i.user for i in other]:
        raise ExerciseFailure(ex, "seeds 0 and 1 gave the same items", "draw the key and the filler from rng")
    for it in items:
        key = it.part_texts[0] if it.part_texts else ""
        if len(it.parts) != 1 or not key.isdigit():
            raise ExerciseFailure(ex, f"the answer's parts are {it.part_texts}; expected one part, the key's digits",
                                  "parts=[(1, 1 + len(key))] for the answer ' <key>.': not the space, not the full stop")
        if it.user.count(key) != 1:
            raise ExerciseFailure(ex, f"the key {key} appears {it.user.count(key)} times in the prompt, expected once")
        if oracle.count_tokens(it.user) > it.cell["length"]:
            raise ExerciseFailure(ex, f"an item of length {it.cell['length']} has {oracle.count_tokens(it.user)} tokens",
                                  "use fit_to_length with the task's count")
    shuffled = list(items)
    random.Random(0).shuffle(shuffled)
    for it in shuffled:
        if call(ex, task.solve, it.messages) != it.prefix + it.answer:
            raise ExerciseFailure(ex, "solve(messages) does not give the prefix and the answer of that item",
                                  "read the key from the prompt text only (re.search), not from anything stored")
    best = evaluate(oracle, [task], quick=True, lengths=settings["lengths"], limit=2).task(task.name)
    if best["exact"] != 1.0:
        raise ExerciseFailure(ex, f"the oracle scores {best['exact']:.2f}, not 1.0: the task cannot be solved "
                                  "from its own prompt")
    coin = ProbeLM(RandomLM(tok), tok, name="coin", device="cpu")
    chance = evaluate(coin, [task], quick=True, lengths=settings["lengths"], limit=2).task(task.name)
    if chance["exact"] != 0.0:
        raise ExerciseFailure(ex, f"a model answering at random scores {chance['exact']:.2f}; a 5-digit key "
                                  "should be out of its reach")
    return passed(ex, "deterministic items that fit, one key, the oracle at 1.0 and the coin at 0")


# ------------------------------------------------------------------------------ 14.2 d'
def _dprime(said_yes, is_target):
    from ..stats import dprime

    h = sum(y and t for y, t in zip(said_yes, is_target))
    m = sum((not y) and t for y, t in zip(said_yes, is_target))
    f = sum(y and not t for y, t in zip(said_yes, is_target))
    c = sum((not y) and (not t) for y, t in zip(said_yes, is_target))
    return dprime(h, m, f, c)


def check_dprime(dprime) -> bool:
    """Exercise 14.2: ``dprime(said_yes, is_target)`` -> z(hit rate) - z(false-alarm rate), with the
    log-linear correction (0.5 added to each of the four counts)."""
    from scipy.stats import norm

    ex = "Exercise 14.2 (d')"
    targets = [True] * 10 + [False] * 20
    cases = [
        ("a perfect responder", targets),
        ("always 'm'", [True] * 30),
        ("a responder with 7 hits and 4 false alarms", [True] * 7 + [False] * 3 + [True] * 4 + [False] * 16),
        ("a responder that says 'm' to non-targets only", [False] * 10 + [True] * 20),
    ]
    for what, said in cases:
        try:
            got = call(ex, dprime, list(said), list(targets))
        except ExerciseFailure as err:
            if "ZeroDivision" in str(err) or "math domain" in str(err):
                raise ExerciseFailure(ex, f"for {what} your function failed ({err.message})",
                                      "add 0.5 to hits, misses, false alarms and correct rejections first") from None
            raise
        want = _dprime(said, targets)
        g = expect_float(ex, got) if got is not None and not (isinstance(got, float) and math.isinf(got)) else got
        if g is None or (isinstance(g, float) and (math.isinf(g) or math.isnan(g))):
            raise ExerciseFailure(ex, f"for {what} you returned {g}", "rates of 0 or 1 need the log-linear correction")
        if math.isclose(g, want, abs_tol=1e-6):
            continue
        h = sum(y and t for y, t in zip(said, targets)) / 10
        f = sum(y and not t for y, t in zip(said, targets)) / 20
        if math.isclose(g, -want, abs_tol=1e-6):
            raise ExerciseFailure(ex, f"for {what} you returned {g:.3f}, the negative of d'",
                                  "d' = z(hit rate) - z(false-alarm rate)")
        if math.isclose(g, h - f, abs_tol=1e-6):
            raise ExerciseFailure(ex, "you returned hit rate minus false-alarm rate", "take z-scores: norm.ppf")
        if 0 < h < 1 and 0 < f < 1 and math.isclose(g, norm.ppf(h) - norm.ppf(f), abs_tol=1e-6):
            raise ExerciseFailure(ex, f"for {what} you returned the uncorrected d' {g:.3f}",
                                  "add 0.5 to each count (and 1 to each total) before taking the rates")
        expect_close(ex, g, want, f"d' for {what}")
    return passed(ex, "perfect, biased and inverted responders all get the right d'")


# ------------------------------------------------------------------------------ 14.3 effective length
def _effective(counts, threshold):
    from ..stats import wilson

    best = None
    for length in sorted(counts):
        k, n = counts[length]
        if not wilson(k, n).above(threshold):
            break
        best = length
    return best


def check_effective_length(effective_length) -> bool:
    """Exercise 14.3: ``effective_length(counts, threshold)`` with ``counts = {length: (right, n)}`` ->
    the longest length whose Wilson interval, and every shorter length's, lies above ``threshold``."""
    from ..stats import wilson

    ex = "Exercise 14.3 (effective length)"
    cases = [
        ({256: (30, 30), 512: (29, 30), 1024: (15, 30), 2048: (3, 30)}, 0.8, "a curve that falls"),
        ({256: (30, 30), 512: (22, 30), 1024: (30, 30)}, 0.8, "a dip, then a recovery"),
        ({1024: (20, 30), 256: (30, 30), 512: (30, 30)}, 0.856, "unsorted lengths"),
        ({256: (24, 30), 512: (10, 30)}, 0.7, "a point above the threshold with an interval across it"),
        ({256: (5, 30), 512: (2, 30)}, 0.5, "a curve that fails from the start"),
    ]
    for counts, threshold, what in cases:
        got = call(ex, effective_length, dict(counts), threshold)
        want = _effective(counts, threshold)
        if got == want:
            continue
        by_point = None
        for length in sorted(counts):
            if counts[length][0] / counts[length][1] <= threshold:
                break
            by_point = length
        lower = [L for L in sorted(counts) if wilson(*counts[L]).above(threshold)]
        if want is None and got in (0, 0.0):
            raise ExerciseFailure(ex, f"for {what} you returned {got!r}", "return None when even the shortest fails")
        if got == by_point:
            raise ExerciseFailure(ex, f"for {what} you returned {got}: you compared the point estimate with the "
                                      f"threshold, expected {want}", "use wilson(k, n).above(threshold)")
        if lower and got == max(lower):
            raise ExerciseFailure(ex, f"for {what} you returned {got}, the longest passing length, expected {want}",
                                  "stop at the first length that fails: a length is effective only if every "
                                  "shorter one is too")
        raise ExerciseFailure(ex, f"for {what} ({counts}, threshold {threshold}) you returned {got!r}, "
                                  f"expected {want!r}")
    return passed(ex, "falls, dips, unsorted curves and wide intervals give the right effective length")
