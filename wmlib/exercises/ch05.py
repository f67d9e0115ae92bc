"""Checkers for Chapter 5, "Self-attention and the Transformer from scratch"."""

from __future__ import annotations

import torch

from ._core import ExerciseFailure, call, expect_tensor, passed

__all__ = ["check_forward_with_cache", "check_grouped_query_attention", "check_next_token_distribution"]


# --------------------------------------------------------------------------------- Exercise 5.1
def _small_gpt():
    from ..transformer import GPT, GPTConfig

    with torch.random.fork_rng():  # leave the notebook's random state alone
        torch.manual_seed(51)
        gpt = GPT(GPTConfig(vocab_size=40, max_len=16, d_model=24, num_heads=3, num_layers=2, d_ff=48)).eval()
        with torch.no_grad():  # weights large enough that every mistake shows in the logits
            for p in gpt.parameters():
                p.normal_(0, 0.3) if p.dim() > 1 else p.normal_(0, 0.1)
    return gpt


def _forward(model, idx, positions, causal: bool = True):
    """The GPT's forward pass with given positions, with or without the causal mask (typical mistakes)."""
    from ..attention import scaled_dot_product_attention

    x = model.tok_emb(idx) + model.pos_emb(positions)
    for block in model.blocks:
        a, h = block.attn, block.norm1(x)
        q, k, v = (a.split_heads(p(h)) for p in (a.q_proj, a.k_proj, a.v_proj))
        out, _ = scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + a.out_proj(out.transpose(1, 2).reshape(x.shape))
        x = x + block.ff(block.norm2(x))
    return model.head(model.norm(x))


_MASK_HINT = ("with a cache of `past` keys, new token i sits at position past + i and may see keys 0 .. past + i: "
              "the mask is causal_mask(T, past + T), (new tokens) x (all keys)")


def _check_cache(ex, cache, model, batch, length):
    if not isinstance(cache, (list, tuple)) or len(cache) != len(model.blocks):
        raise ExerciseFailure(ex, f"return the new cache as a list with one (k, v) pair per block "
                                  f"({len(model.blocks)} blocks); got {type(cache).__name__}")
    a = model.blocks[0].attn
    for layer, kv in enumerate(cache):
        if not isinstance(kv, (list, tuple)) or len(kv) != 2:
            raise ExerciseFailure(ex, f"cache[{layer}] should be a pair (k, v)")
        for name, t in zip("kv", kv):
            t = expect_tensor(ex, t, name=f"cache[{layer}] {name}")
            if t.dim() == 4 and t.shape[2] != length:
                raise ExerciseFailure(
                    ex, f"after {length} tokens cache[{layer}] {name} holds {t.shape[2]} positions",
                    "append the new keys and values to the old ones: torch.cat([old, new], dim=2)")
            expect_tensor(ex, t, shape=(batch, a.num_heads, length, a.d_head), name=f"cache[{layer}] {name}")


def check_forward_with_cache(forward_with_cache) -> bool:
    """Exercise 5.1: ``forward_with_cache(model, idx, cache)`` -> (logits, new_cache)."""
    ex = "Exercise 5.1 (KV-cached decoding)"
    model = _small_gpt()
    g = torch.Generator().manual_seed(5)
    B, n_prompt, n_new, chunk = 2, 5, 6, 3
    idx = torch.randint(40, (B, n_prompt + n_new + chunk), generator=g)
    with torch.no_grad():
        full = model(idx)
        logits, cache = call(ex, forward_with_cache, model, idx[:, :n_prompt], None)
        expect_tensor(ex, logits, shape=(B, n_prompt, 40), name="the prompt's logits")
        if not torch.allclose(logits, full[:, :n_prompt], atol=1e-4):
            if torch.allclose(logits, _forward(model, idx[:, :n_prompt], torch.arange(n_prompt), False), atol=1e-4):
                raise ExerciseFailure(ex, "on the prompt (no cache yet) every position sees the tokens after it",
                                      "use a causal mask")
            raise ExerciseFailure(ex, "with an empty cache (cache=None) the logits differ from model(idx)")
        _check_cache(ex, cache, model, B, n_prompt)
        for t in range(n_prompt, n_prompt + n_new):  # one token at a time
            logits, cache = call(ex, forward_with_cache, model, idx[:, t:t + 1], cache)
            expect_tensor(ex, logits, shape=(B, 1, 40), name=f"the logits of token {t}")
            _check_cache(ex, cache, model, B, t + 1)
            if not torch.allclose(logits[:, 0], full[:, t], atol=1e-4):
                wrong_pos = _forward(model, idx[:, :t + 1], torch.cat([torch.arange(t), torch.zeros(1, dtype=torch.long)]))[:, t]
                if torch.allclose(logits[:, 0], wrong_pos, atol=1e-4):
                    raise ExerciseFailure(ex, "the new token gets position 0: its position embedding must be "
                                          "that of its place in the whole sequence",
                                          "positions run from the cache's length: torch.arange(past, past + T)")
                raise ExerciseFailure(ex, f"decoding token {t} with the cache gives other logits than the full "
                                      "forward pass", _MASK_HINT)
        n = n_prompt + n_new  # several new tokens at once: the mask needs the cache's offset
        logits, cache = call(ex, forward_with_cache, model, idx[:, n:n + chunk], cache)
        expect_tensor(ex, logits, shape=(B, chunk, 40), name="the logits of a chunk of tokens")
        if not torch.allclose(logits, full[:, n:n + chunk], atol=1e-4):
            raise ExerciseFailure(ex, f"feeding {chunk} new tokens at once after a cache of {n} gives wrong logits",
                                  _MASK_HINT)
        _check_cache(ex, cache, model, B, n + chunk)
    return passed(ex, "prompt, token-by-token decoding and a chunk all match the full forward pass")


# --------------------------------------------------------------------------------- Exercise 5.2
def _gqa_reference(q, k, v, tile: bool = False, causal: bool = True):
    from ..attention import scaled_dot_product_attention

    group = q.shape[1] // k.shape[1]
    if tile:  # the common mistake: head h reads kv head h % H_kv
        k, v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)
    else:
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    return scaled_dot_product_attention(q, k, v, is_causal=causal)[0]


def check_grouped_query_attention(grouped_query_attention) -> bool:
    """Exercise 5.2: ``grouped_query_attention(q, k, v)``, causal, q (B, H, L, d), k and v (B, H_kv, L, d)."""
    ex = "Exercise 5.2 (grouped-query attention)"
    g = torch.Generator().manual_seed(52)
    for B, H, H_kv, L, d in ((2, 6, 2, 5, 8), (1, 4, 4, 3, 4), (1, 4, 1, 6, 4), (2, 8, 4, 4, 2)):
        q = torch.randn(B, H, L, d, generator=g)
        k, v = torch.randn(B, H_kv, L, d, generator=g), torch.randn(B, H_kv, L, d, generator=g)
        got = call(ex, grouped_query_attention, q, k, v)
        if isinstance(got, tuple):
            got = got[0]
        got = expect_tensor(ex, got, shape=(B, H, L, d), name=f"the output for H={H}, H_kv={H_kv}")
        if torch.allclose(got, _gqa_reference(q, k, v), atol=1e-5):
            continue
        if torch.allclose(got, _gqa_reference(q, k, v, tile=True), atol=1e-5):
            raise ExerciseFailure(ex, f"with H={H} and H_kv={H_kv}, query head h reads key/value head h % H_kv: "
                                  "the groups are interleaved",
                                  "consecutive query heads share a key/value head (h // group): "
                                  "k.repeat_interleave(group, dim=1), not k.repeat(1, group, 1, 1)")
        if torch.allclose(got, _gqa_reference(q, k, v, causal=False), atol=1e-5):
            raise ExerciseFailure(ex, "the output is not causal: query i must not see keys after it")
        raise ExerciseFailure(ex, f"the output for H={H}, H_kv={H_kv} differs from grouped-query attention")
    return passed(ex, "each key/value head serves a group of consecutive query heads")


# --------------------------------------------------------------------------------- Exercise 5.3
def check_next_token_distribution(next_token_distribution) -> bool:
    """Exercise 5.3: ``next_token_distribution(logits, temperature=1.0, top_k=None)`` -> probabilities."""
    from ..transformer import next_token_probs

    ex = "Exercise 5.3 (temperature and top-k)"
    g = torch.Generator().manual_seed(53)
    logits = torch.randn(3, 12, generator=g) * 2
    for temperature, top_k in ((1.0, None), (0.5, None), (2.0, None), (1.0, 3), (0.7, 5), (1.5, 1), (1.0, 12)):
        got = call(ex, next_token_distribution, logits.clone(), temperature=temperature, top_k=top_k)
        got = expect_tensor(ex, got, shape=(3, 12), name=f"the distribution (temperature={temperature}, top_k={top_k})")
        want = next_token_probs(logits, temperature, top_k)
        if torch.allclose(got, want, atol=1e-6):
            continue
        setting = f"with temperature={temperature}, top_k={top_k}"
        if not torch.allclose(got.sum(-1), torch.ones(3), atol=1e-5):
            if top_k is not None and torch.allclose(got, torch.softmax(logits / temperature, -1) * (want > 0), atol=1e-6):
                raise ExerciseFailure(ex, f"{setting} the probabilities do not sum to 1",
                                      "drop the tokens outside the top k *before* the softmax (set their logits "
                                      "to -inf), or renormalise after")
            raise ExerciseFailure(ex, f"{setting} the rows do not sum to 1: return probabilities, not logits")
        if top_k is None and torch.allclose(got, torch.softmax(logits * temperature, -1), atol=1e-6):
            raise ExerciseFailure(ex, "you multiplied the logits by the temperature",
                                  "divide: a temperature below 1 sharpens the distribution")
        if top_k is not None:
            kept = int((got > 0).sum(-1).max())
            if kept != top_k:
                raise ExerciseFailure(ex, f"{setting} {kept} tokens keep a non-zero probability, expected {top_k}")
        raise ExerciseFailure(ex, f"{setting} the distribution differs from softmax(logits / temperature) "
                              "restricted to the top k")
    return passed(ex, "softmax(logits / temperature) over the k most likely tokens")
