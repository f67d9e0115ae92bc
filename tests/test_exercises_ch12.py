"""Chapter 12 checkers: right answers pass, typical mistakes are named."""

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch12
from wmlib.icl import build_prompt


def test_prompt_checker_passes_the_library_version(capsys):
    assert ch12.check_few_shot_prompt(build_prompt)
    assert capsys.readouterr().out.startswith("✓ Exercise 12.1")


def _join(parts):
    return "\n\n".join(parts)


@pytest.mark.parametrize("fn, message", [
    (lambda d, q, w: build_prompt(d, q, w) + " ", "ends with a space"),
    (lambda d, q, w: build_prompt([(t, 1 - y) for t, y in d], q, w), "swapped"),
    (lambda d, q, w: "\n\n".join([f"Review: {t.strip()}\nSentiment: {w[y]}" for t, y in d])
     + f"\n\nReview: {q.strip()}\nSentiment:", "starts with a separator"),
    (lambda d, q, w: "\n".join([f"Review: {t.strip()}\nSentiment: {w[y]}" for t, y in d]
                               + [f"Review: {q.strip()}\nSentiment:"]), "blank line"),
    (lambda d, q, w: _join([f"Review: {t}\nSentiment: {w[y]}" for t, y in d] + [f"Review: {q.strip()}\nSentiment:"]),
     "trailing space"),
    (lambda d, q, w: 42, "return a str"),
])
def test_prompt_checker_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch12.check_few_shot_prompt(fn)


def test_calibration_checker():
    def right(p, p_cf):
        q = p / p_cf
        return q / q.sum(-1, keepdim=True)

    assert ch12.check_calibrate_probs(right)
    wrong = {
        "multiplied": lambda p, c: (p * c) / (p * c).sum(-1, keepdim=True),
        "do not sum to 1": lambda p, c: p / c,
        "columns": lambda p, c: (p / c) / (p / c).sum(0, keepdim=True),
        "subtracted": lambda p, c: p - c,
        "shape": lambda p, c: right(p, c)[:, :1],
    }
    for message, fn in wrong.items():
        with pytest.raises(ExerciseFailure, match=message):
            ch12.check_calibrate_probs(fn)
    with pytest.raises(ExerciseFailure, match="should be a torch.Tensor"):
        ch12.check_calibrate_probs(lambda p, c: right(p, c).tolist())


def test_kv_checker():
    def right(n, c, b=4):
        hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        return 2 * c.num_hidden_layers * c.num_key_value_heads * hd * b * n

    assert ch12.check_kv_cache_bytes(right)
    wrong = {
        "query heads": lambda n, c, b=4: 2 * c.num_hidden_layers * c.num_attention_heads * 64 * b * n,
        "a key and a value": lambda n, c, b=4: right(n, c, b) // 2,
        "bytes_per_value": lambda n, c, b=4: right(n, c, b) // b,
        "num_hidden_layers": lambda n, c, b=4: right(n, c, b) // c.num_hidden_layers,
        "hidden_size": lambda n, c, b=4: 2 * c.num_hidden_layers * c.hidden_size * b * n,
    }
    for message, fn in wrong.items():
        with pytest.raises(ExerciseFailure, match=message):
            ch12.check_kv_cache_bytes(fn)


def test_unattempted_and_crashing_answers():
    def stub(*args):
        raise NotImplementedError

    for check in (ch12.check_few_shot_prompt, ch12.check_calibrate_probs, ch12.check_kv_cache_bytes):
        with pytest.raises(ExerciseIncomplete):
            check(stub)
    with pytest.raises(ExerciseFailure, match="raised ZeroDivisionError"):
        ch12.check_calibrate_probs(lambda p, c: 1 / 0)
