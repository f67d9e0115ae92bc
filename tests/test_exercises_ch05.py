"""Chapter 5's checkers pass right answers and name the typical mistakes."""

import pytest
import torch

from wmlib.attention import causal_mask, scaled_dot_product_attention
from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch05
from wmlib.transformer import next_token_probs

# ---------------------------------------------------------------------------- 5.1 KV cache


def make_forward_with_cache(positions_from_zero=False, no_append=False, no_mask=False, mask_without_offset=False):
    def forward_with_cache(model, idx, cache=None):
        past = 0 if cache is None else cache[0][0].shape[2]
        T = idx.shape[1]
        start = 0 if positions_from_zero else past
        x = model.tok_emb(idx) + model.pos_emb(torch.arange(start, start + T))
        new_cache = []
        for i, block in enumerate(model.blocks):
            a, h = block.attn, block.norm1(x)
            q, k, v = (a.split_heads(p(h)) for p in (a.q_proj, a.k_proj, a.v_proj))
            if cache is not None:
                k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
            new_cache.append((k[:, :, -T:], v[:, :, -T:]) if no_append else (k, v))
            if no_mask:
                mask = None
            elif mask_without_offset:
                mask = torch.ones(T, past + T, dtype=torch.bool).tril()
            else:
                mask = causal_mask(T, past + T)
            out, _ = scaled_dot_product_attention(q, k, v, mask=mask)
            x = x + a.out_proj(out.transpose(1, 2).reshape(x.shape))
            x = x + block.ff(block.norm2(x))
        return model.head(model.norm(x)), new_cache

    return forward_with_cache


def test_cache_checker_passes(capsys):
    assert ch05.check_forward_with_cache(make_forward_with_cache())
    assert capsys.readouterr().out.startswith("✓ Exercise 5.1")


@pytest.mark.parametrize("kwargs, message", [
    ({"positions_from_zero": True}, "gets position 0"),
    ({"no_append": True}, "append the new keys"),
    ({"no_mask": True}, "causal mask"),
    ({"mask_without_offset": True}, "causal_mask\\(T, past \\+ T\\)"),
])
def test_cache_checker_diagnoses(kwargs, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch05.check_forward_with_cache(make_forward_with_cache(**kwargs))


def test_cache_checker_rejects_a_bare_tensor():
    def logits_only(model, idx, cache=None):
        return model(idx), None

    with pytest.raises(ExerciseFailure, match="one \\(k, v\\) pair per block"):
        ch05.check_forward_with_cache(logits_only)


def test_cache_checker_keeps_the_global_random_state():
    torch.manual_seed(0)
    a = torch.rand(1)
    torch.manual_seed(0)
    ch05.check_forward_with_cache(make_forward_with_cache())
    assert torch.equal(torch.rand(1), a)


# ---------------------------------------------------------------------------- 5.2 GQA


def gqa(q, k, v, tile=False, causal=True):
    group = q.shape[1] // k.shape[1]
    if tile:
        k, v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)
    else:
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    return scaled_dot_product_attention(q, k, v, is_causal=causal)[0]


def test_gqa_checker_passes(capsys):
    assert ch05.check_grouped_query_attention(gqa)
    assert ch05.check_grouped_query_attention(lambda q, k, v: scaled_dot_product_attention(
        q, k.repeat_interleave(q.shape[1] // k.shape[1], 1), v.repeat_interleave(q.shape[1] // k.shape[1], 1),
        is_causal=True))  # a pair (output, weights) is accepted too
    assert "Exercise 5.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (lambda q, k, v: gqa(q, k, v, tile=True), "h % H_kv"),
    (lambda q, k, v: gqa(q, k, v, causal=False), "not causal"),
    (lambda q, k, v: gqa(q, k, v)[:, : k.shape[1]], "shape"),
    (lambda q, k, v: gqa(q, k, v) * 2, "differs"),
])
def test_gqa_checker_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch05.check_grouped_query_attention(fn)


# ---------------------------------------------------------------------------- 5.3 sampling


def test_sampling_checker_passes():
    assert ch05.check_next_token_distribution(next_token_probs)


def top_k_without_renormalising(logits, temperature=1.0, top_k=None):
    p = torch.softmax(logits / temperature, -1)
    if top_k is not None:
        kth = p.topk(top_k, -1).values[..., -1:]
        p = p * (p >= kth)
    return p


def k_plus_one(logits, temperature=1.0, top_k=None):
    return next_token_probs(logits, temperature, None if top_k is None else min(top_k + 1, logits.shape[-1]))


@pytest.mark.parametrize("fn, message", [
    (lambda logits, temperature=1.0, top_k=None: torch.softmax(logits * temperature, -1), "multiplied"),
    (top_k_without_renormalising, "before\\* the softmax"),
    (k_plus_one, "non-zero probability"),
    (lambda logits, temperature=1.0, top_k=None: logits / temperature, "not logits"),
    (lambda logits, temperature=1.0, top_k=None: next_token_probs(logits), "differs"),
])
def test_sampling_checker_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch05.check_next_token_distribution(fn)


def test_unattempted_is_friendly():
    def stub(*args, **kwargs):
        raise NotImplementedError

    for check in (ch05.check_forward_with_cache, ch05.check_grouped_query_attention,
                  ch05.check_next_token_distribution):
        with pytest.raises(ExerciseIncomplete, match="not attempted"):
            check(stub)


def test_student_errors_are_messages_for_jupyter_and_nbgrader():
    def stub(*args, **kwargs):
        raise NotImplementedError

    with pytest.raises(ExerciseIncomplete) as err:
        ch05.check_grouped_query_attention(stub)
    lines = err.value._render_traceback_()
    assert lines[0].startswith("✗ Exercise 5.2") and "not attempted" in lines[0]
    assert not any("Traceback" in line for line in lines)
    assert isinstance(err.value, AssertionError), "nbgrader counts AssertionError as a failed test"
    with pytest.raises(ExerciseFailure, match="raised ZeroDivisionError"):
        ch05.check_grouped_query_attention(lambda q, k, v: 1 / 0)
