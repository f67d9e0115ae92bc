"""Checkers for Chapter 2, "Working memory meets long-term memory"."""

from __future__ import annotations

import math

import torch

from ._core import ExerciseFailure, call, expect_float, passed

__all__ = ["check_conflict_outcomes", "check_continuation_logprob"]

_KEYS = ("context", "weights", "other")


def check_conflict_outcomes(conflict_outcomes) -> bool:
    """Exercise 2.1: ``conflict_outcomes(outputs, context_answers, weights_answers)`` -> dict of rates."""
    ex = "Exercise 2.1 (override rate)"
    outputs = [" Rome.", " Paris", "Rome", " Limassol", " London", " New York City", " New", " paris"]
    context = [" Rome", " Rome", " Rome", " Lima", " Rome", " New York", " New York", " Rome"]
    weights = [" Paris", " Paris", " Paris", " Paris", " Paris", " Paris", " Paris", " Paris"]
    # Rome. -> context; Paris -> weights; Rome -> context; Limassol -> other (not Lima: a different word);
    # London -> other; New York City -> context; New -> other (only part of the answer); paris -> other.
    want = {"context": 3 / 8, "weights": 1 / 8, "other": 4 / 8}
    got = call(ex, conflict_outcomes, list(outputs), list(context), list(weights))
    if not isinstance(got, dict) or set(got) != set(_KEYS):
        keys = sorted(got) if isinstance(got, dict) else type(got).__name__
        raise ExerciseFailure(ex, f"return a dict with the keys {list(_KEYS)}, got {keys}")
    try:
        vals = {k: float(got[k]) for k in _KEYS}
    except (TypeError, ValueError):
        raise ExerciseFailure(ex, f"the rates should be numbers, got {got}") from None
    if not math.isclose(sum(vals.values()), 1.0, abs_tol=1e-9):
        raise ExerciseFailure(ex, f"the three rates sum to {sum(vals.values()):.3f}, not 1: every output is "
                              "exactly one of context, weights or other", "other = 1 - context - weights")
    if all(math.isclose(vals[k], want[k]) for k in _KEYS):
        return passed(ex, "context / weights / other rates, matched word by word")
    if math.isclose(vals["context"], 4 / 8):
        raise ExerciseFailure(ex, "you count ' Limassol' as following the context answer ' Lima': a prefix "
                              "of a longer word is a different answer",
                              "after the answer, the next character (if any) must not be a letter")
    if math.isclose(vals["weights"], 2 / 8):
        raise ExerciseFailure(ex, "you count ' paris' as the answer ' Paris': compare case-sensitively, the "
                              "model wrote a different token")
    if vals["context"] < want["context"]:
        raise ExerciseFailure(ex, f"your context rate is {vals['context']:.3f}, expected {want['context']:.3f}: "
                              "strip the spaces before comparing, and allow text after the answer "
                              "(' Rome.' and ' New York City' both start with their answer)")
    raise ExerciseFailure(ex, f"got {vals}, expected {want}",
                          "an output follows an answer when output.strip() starts with answer.strip() "
                          "and the next character, if any, is not a letter")


def _reference_logprob(logits, prompt_len, continuation_ids):
    logp = torch.log_softmax(logits.double(), dim=-1)
    n = len(continuation_ids)
    rows = logp[prompt_len - 1:prompt_len - 1 + n]
    return rows.gather(-1, torch.as_tensor(continuation_ids)[:, None]).sum().item()


def check_continuation_logprob(continuation_logprob) -> bool:
    """Exercise 2.2: ``continuation_logprob(logits, prompt_len, continuation_ids)`` -> float."""
    ex = "Exercise 2.2 (log-probability of a continuation)"
    g = torch.Generator().manual_seed(2)
    V, prompt_len = 11, 5
    cont = [3, 7, 1]
    L = prompt_len + len(cont)
    logits = torch.randn(L, V, generator=g) * 3
    want = _reference_logprob(logits, prompt_len, cont)
    got = call(ex, continuation_logprob, logits.clone(), prompt_len, list(cont))
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise ExerciseFailure(ex, f"return one number (the sum over the continuation), got a tensor of "
                                  f"shape {tuple(got.shape)}")
        got = got.item()
    got = expect_float(ex, got)
    if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5):
        # A second case with a longer prompt guards against hard-coded offsets.
        logits2 = torch.randn(9 + 2, V, generator=g)
        want2 = _reference_logprob(logits2, 9, [0, 10])
        got2 = call(ex, continuation_logprob, logits2.clone(), 9, [0, 10])
        got2 = got2.item() if isinstance(got2, torch.Tensor) else float(got2)
        if not math.isclose(got2, want2, rel_tol=1e-4, abs_tol=1e-5):
            raise ExerciseFailure(ex, f"right on the first case but {got2:.4f} instead of {want2:.4f} on a second "
                                  "one: do not hard-code the prompt length")
        return passed(ex, "sum of log-softmax at positions prompt_len-1 ... (teacher forcing, shifted by one)")
    logp = torch.log_softmax(logits.double(), -1)
    unshifted = logp[prompt_len:prompt_len + len(cont)].gather(-1, torch.tensor(cont)[:, None]).sum().item()
    raw = logits.double()[prompt_len - 1:prompt_len - 1 + len(cont)].gather(-1, torch.tensor(cont)[:, None]).sum().item()
    probs = torch.softmax(logits.double(), -1)[prompt_len - 1:L - 1].gather(-1, torch.tensor(cont)[:, None])
    mistakes = [
        (unshifted, "you read the log-probabilities one position too late: the logits at position t "
                    "predict token t+1", "use logits[prompt_len - 1 : prompt_len - 1 + len(continuation_ids)]"),
        (raw, "you summed raw logits; take log_softmax over the vocabulary first", None),
        (want / len(cont), "you averaged over the continuation's tokens; the log-probability of a sequence "
                           "is the SUM of its tokens' log-probabilities", None),
        (probs.sum().item(), "you summed probabilities; sum log-probabilities instead", None),
        (probs.prod().item(), "that is the probability, not its logarithm", None),
    ]
    for wrong, message, hint in mistakes:
        if math.isclose(got, wrong, rel_tol=1e-4, abs_tol=1e-5):
            raise ExerciseFailure(ex, f"you return {got:.4f}, expected {want:.4f}: {message}", hint)
    raise ExerciseFailure(ex, f"you return {got:.4f}, expected {want:.4f}",
                          "sum of log_softmax(logits)[t, token] for the continuation tokens, t from prompt_len - 1")
