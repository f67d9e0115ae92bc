"""Checkers for Chapter 12, "In-context learning"."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ._core import ExerciseFailure, call, expect_tensor, passed

__all__ = ["check_few_shot_prompt", "check_calibrate_probs", "check_kv_cache_bytes"]


def check_few_shot_prompt(few_shot_prompt) -> bool:
    """Exercise 12.1: ``few_shot_prompt(demos, query, label_words) -> str``, as wmlib.icl.build_prompt."""
    from ..icl import build_prompt

    ex = "Exercise 12.1 (few-shot prompt)"
    cases = [
        ([("a gorgeous , witty film", 1), ("the plot is lame ", 0)], " an unexpected delight", ("negative", "positive")),
        ([], "flat and dull", ("negative", "positive")),
        ([("bad", 0), ("good", 1), ("fine", 1)], "meh", ("foo", "bar")),
    ]
    for demos, query, words in cases:
        got = call(ex, few_shot_prompt, demos, query, words)
        want = build_prompt(demos, query, words)
        if not isinstance(got, str):
            raise ExerciseFailure(ex, f"return a str, got {type(got).__name__}")
        if got == want:
            continue
        k = len(demos)
        if got == want + " ":
            raise ExerciseFailure(ex, "the prompt ends with a space after 'Sentiment:'",
                                  "the label tokens (' positive') carry their own leading space: end with 'Sentiment:'")
        if got.rstrip() == want:
            raise ExerciseFailure(ex, "the prompt has trailing whitespace after 'Sentiment:'")
        if k and got == build_prompt([(t, 1 - y) for t, y in demos], query, words):
            raise ExerciseFailure(ex, "the label words are swapped", "label y is written as label_words[y]")
        if k == 0 and got.lstrip("\n") == want:
            raise ExerciseFailure(ex, "with no demonstrations the prompt starts with a separator",
                                  "join the parts with '\\n\\n' rather than adding a separator before the query")
        if got.replace("\n\n", "\n") == want.replace("\n\n", "\n") and got != want:
            raise ExerciseFailure(ex, "the examples are not separated by exactly one blank line ('\\n\\n')")
        if got.replace(" \n", "\n") == want or " \n" in got:
            raise ExerciseFailure(ex, "a text keeps a trailing space before its newline", "strip() the texts")
        raise ExerciseFailure(ex, f"for {k} demonstrations the prompt differs from the expected one:\n"
                                  f"  got:      {got!r}\n  expected: {want!r}")
    return passed(ex, "same prompt as wmlib.icl.build_prompt, ending right after 'Sentiment:'")


def check_calibrate_probs(calibrate_probs) -> bool:
    """Exercise 12.2: ``calibrate_probs(p (N, C), p_cf (C,)) -> (N, C)`` probabilities."""
    ex = "Exercise 12.2 (contextual calibration)"
    p = torch.tensor([[0.7, 0.3], [0.9, 0.1], [0.55, 0.45], [0.2, 0.8]])
    p_cf = torch.tensor([0.8, 0.2])
    got = call(ex, calibrate_probs, p.clone(), p_cf.clone())
    want = (p / p_cf) / (p / p_cf).sum(-1, keepdim=True)
    got = expect_tensor(ex, got, name="the calibrated probabilities")
    if tuple(got.shape) != tuple(want.shape):
        raise ExerciseFailure(ex, f"the result has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    got = got.to(want.dtype)
    if torch.allclose(got, want, atol=1e-5):
        p3 = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
        cf3 = torch.tensor([0.5, 0.3, 0.2])
        want3 = (p3 / cf3) / (p3 / cf3).sum(-1, keepdim=True)
        got3 = expect_tensor(ex, call(ex, calibrate_probs, p3.clone(), cf3.clone()), shape=(2, 3),
                             name="the result for three labels")
        if not torch.allclose(got3.to(want3.dtype), want3, atol=1e-5):
            raise ExerciseFailure(ex, "correct for two labels but not for three", "normalise over the last dimension")
        return passed(ex, "divided by the content-free probabilities and renormalised each row")
    mult = (p * p_cf) / (p * p_cf).sum(-1, keepdim=True)
    if torch.allclose(got, mult, atol=1e-5):
        raise ExerciseFailure(ex, "you multiplied by p_cf: that makes the bias stronger", "divide by p_cf")
    if torch.allclose(got, p / p_cf, atol=1e-5):
        raise ExerciseFailure(ex, "the rows do not sum to 1", "renormalise: q / q.sum(dim=-1, keepdim=True)")
    col = (p / p_cf) / (p / p_cf).sum(0, keepdim=True)
    if torch.allclose(got, col, atol=1e-5):
        raise ExerciseFailure(ex, "the columns sum to 1, not the rows", "normalise each row: sum over dim=-1")
    sub = (p - p_cf)
    if torch.allclose(got, sub, atol=1e-5) or torch.allclose(got, torch.softmax(sub, -1), atol=1e-5):
        raise ExerciseFailure(ex, "you subtracted p_cf from the probabilities",
                              "calibration divides probabilities (it subtracts log-probabilities)")
    if not torch.allclose(got.sum(-1), torch.ones(len(p)), atol=1e-4):
        raise ExerciseFailure(ex, "the rows do not sum to 1")
    raise ExerciseFailure(ex, "the calibrated probabilities differ from p / p_cf, renormalised")


def check_kv_cache_bytes(kv_cache_bytes) -> bool:
    """Exercise 12.3: ``kv_cache_bytes(num_tokens, config, bytes_per_value=4)``."""
    ex = "Exercise 12.3 (KV-cache bytes)"
    smollm = SimpleNamespace(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                             hidden_size=576, head_dim=64)
    no_head_dim = SimpleNamespace(num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8,
                                  hidden_size=256)
    for config, tokens, b in ((smollm, 100, 4), (smollm, 7, 2), (no_head_dim, 10, 4)):
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        L, kv, q = config.num_hidden_layers, config.num_key_value_heads, config.num_attention_heads
        want = 2 * L * kv * head_dim * b * tokens
        got = call(ex, kv_cache_bytes, tokens, config, b)
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if got == want:
            continue
        hints = [  # in order: for SmolLM2, 9 query heads x 64 = hidden_size, so the first two coincide
            (2 * L * q * head_dim * b * tokens, "you counted query heads (or used hidden_size): the cache stores keys "
             "and values per KV head, num_key_value_heads x head_dim (SmolLM2 shares 3 KV heads among 9)"),
            (2 * L * config.hidden_size * b * tokens, "use num_key_value_heads * head_dim, not hidden_size"),
            (L * kv * head_dim * b * tokens, "the cache holds two vectors per token and layer: a key and a value"),
            (2 * L * kv * head_dim * tokens, "multiply by bytes_per_value"),
            (2 * kv * head_dim * b * tokens, "every layer has its own cache: multiply by num_hidden_layers"),
        ]
        hint = next((h for value, h in hints if got == value), None)
        raise ExerciseFailure(ex, f"kv_cache_bytes({tokens}, ..., {b}) = {got!r}, expected {want}", hint)
    return passed(ex, "2 × layers × KV heads × head_dim × bytes per value, per token")
