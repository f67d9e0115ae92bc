"""The Chapter 2 checkers accept right answers and name the typical mistakes."""

import re

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ch02


def _follows(output, answer):
    out, ans = output.strip(), answer.strip()
    return out.startswith(ans) and (len(out) == len(ans) or not out[len(ans)].isalpha())


def outcomes_right(outputs, context_answers, weights_answers):
    n = len(outputs)
    ctx = sum(_follows(o, c) for o, c in zip(outputs, context_answers)) / n
    wts = sum(_follows(o, w) for o, w in zip(outputs, weights_answers)) / n
    return {"context": ctx, "weights": wts, "other": 1 - ctx - wts}


def test_conflict_outcomes_accepts_the_right_answer():
    assert ch02.check_conflict_outcomes(outcomes_right)


def outcomes_prefix(outputs, context_answers, weights_answers):
    n = len(outputs)
    ctx = sum(o.strip().startswith(c.strip()) for o, c in zip(outputs, context_answers)) / n
    wts = sum(o.strip().startswith(w.strip()) for o, w in zip(outputs, weights_answers)) / n
    return {"context": ctx, "weights": wts, "other": 1 - ctx - wts}


def outcomes_exact(outputs, context_answers, weights_answers):
    n = len(outputs)
    ctx = sum(o == c for o, c in zip(outputs, context_answers)) / n
    wts = sum(o == w for o, w in zip(outputs, weights_answers)) / n
    return {"context": ctx, "weights": wts, "other": 1 - ctx - wts}


def outcomes_nocase(outputs, context_answers, weights_answers):
    low = [o.lower() for o in outputs]
    return outcomes_right(low, [c.lower() for c in context_answers], [w.lower() for w in weights_answers])


@pytest.mark.parametrize("wrong, message", [
    (outcomes_prefix, "Limassol"),
    (outcomes_exact, "strip the spaces"),
    (outcomes_nocase, "case-sensitively"),
    (lambda o, c, w: {"context": 0.5, "weights": 0.5}, "keys"),
    (lambda o, c, w: {"context": 0.5, "weights": 0.5, "other": 0.5}, "sum to"),
    (lambda o, c, w: [0.1, 0.2, 0.7], "dict"),
])
def test_conflict_outcomes_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch02.check_conflict_outcomes(wrong)


def logprob_right(logits, prompt_len, continuation_ids):
    logp = torch.log_softmax(logits, dim=-1)
    rows = logp[prompt_len - 1: prompt_len - 1 + len(continuation_ids)]
    return rows.gather(-1, torch.tensor(continuation_ids)[:, None]).sum().item()


def test_continuation_logprob_accepts_the_right_answer():
    assert ch02.check_continuation_logprob(logprob_right)
    # A tensor with one element is fine too.
    assert ch02.check_continuation_logprob(lambda *a: torch.tensor(logprob_right(*a)))


def logprob_unshifted(logits, prompt_len, ids):
    logp = torch.log_softmax(logits, dim=-1)[prompt_len: prompt_len + len(ids)]
    return logp.gather(-1, torch.tensor(ids)[:, None]).sum().item()


def logprob_raw(logits, prompt_len, ids):
    return logits[prompt_len - 1: prompt_len - 1 + len(ids)].gather(-1, torch.tensor(ids)[:, None]).sum().item()


def logprob_mean(logits, prompt_len, ids):
    return logprob_right(logits, prompt_len, ids) / len(ids)


def logprob_prob(logits, prompt_len, ids):
    return float(torch.tensor(logprob_right(logits, prompt_len, ids)).exp())


def logprob_hardcoded(logits, prompt_len, ids):
    return logprob_right(logits, 5, ids)


@pytest.mark.parametrize("wrong, message", [
    (logprob_unshifted, "one position too late"),
    (logprob_raw, "raw logits"),
    (logprob_mean, "SUM"),
    (logprob_prob, re.escape("probability, not its logarithm")),
    (logprob_hardcoded, "hard-code"),
    (lambda logits, p, ids: torch.zeros(3), "one number"),
])
def test_continuation_logprob_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch02.check_continuation_logprob(wrong)
