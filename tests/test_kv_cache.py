"""wmlib.kv_cache: the cache, decoding with it, and eviction under a budget."""

import pytest
import torch

from wmlib.kv_cache import (
    AttentionSinks,
    CachedDecoder,
    HeavyHitters,
    KVCache,
    PerRow,
    SlidingWindow,
    apply_rope,
    babi_text,
    greedy_decode,
    kv_bytes_per_token,
    stream_under_budget,
    uncached_greedy_decode,
)


# ------------------------------------------------------------------------------------ KVCache
def kv(B=2, G=3, T=4, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, G, T, D, generator=g), torch.randn(B, G, T, D, generator=g)


@pytest.mark.parametrize("capacity", [None, 16])
def test_append_concatenates_along_tokens(capacity):
    cache = KVCache(2, capacity=capacity)
    k1, v1 = kv(T=3)
    k2, v2 = kv(T=1, seed=1)
    cache.append(0, k1, v1)
    k, v = cache.append(0, k2, v2)
    assert torch.equal(k, torch.cat([k1, k2], 2)) and torch.equal(v, torch.cat([v1, v2], 2))
    assert cache.layer_length(0) == 4 and cache.layer_length(1) == 0 and cache.length == 4 and len(cache) == 4


def test_nbytes_counts_allocated_storage():
    k, v = kv(B=1, G=3, T=5, D=64)
    dynamic, static = KVCache(1), KVCache(1, capacity=20)
    dynamic.append(0, k, v)
    static.append(0, k, v)
    assert dynamic.nbytes() == 2 * 3 * 5 * 64 * 4
    assert static.nbytes() == 2 * 3 * 20 * 64 * 4  # preallocated, whatever is used


def test_capacity_overflow_is_explained():
    cache = KVCache(1, capacity=4)
    cache.append(0, *kv(T=3))
    with pytest.raises(RuntimeError, match="capacity of 4"):
        cache.append(0, *kv(T=2))


@pytest.mark.parametrize(
    "k, v, message",
    [
        (torch.zeros(2, 3, 8), torch.zeros(2, 3, 8), "4-D"),
        (torch.zeros(1, 3, 2, 8, dtype=torch.long), torch.zeros(1, 3, 2, 8, dtype=torch.long), "floating point"),
        (torch.zeros(1, 3, 2, 8), torch.zeros(1, 3, 3, 8), "must match"),
        ("keys", torch.zeros(1, 3, 2, 8), "4-D"),
    ],
)
def test_bad_appends_are_explained(k, v, message):
    with pytest.raises(ValueError, match=message):
        KVCache(1).append(0, k, v)


def test_append_of_another_shape_names_both():
    cache = KVCache(1)
    cache.append(0, *kv(B=1, G=3, D=8))
    with pytest.raises(ValueError, match=r"holds \(batch, kv_heads, head_dim\) = \(1, 3, 8\)"):
        cache.append(0, *kv(B=1, G=2, D=8))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_constructor_arguments(bad):
    with pytest.raises(ValueError, match="num_layers"):
        KVCache(bad)
    with pytest.raises(ValueError, match="capacity"):
        KVCache(1, capacity=bad)


def test_bad_layer_and_empty_layer():
    cache = KVCache(2)
    with pytest.raises(IndexError, match=r"\[0, 2\)"):
        cache.append(2, *kv())
    with pytest.raises(ValueError, match="empty"):
        cache.get(1)


def test_positions_follow_appends_evictions_and_sets():
    cache = KVCache(1)
    k, v = kv(B=2, G=3, T=4)
    cache.append(0, k, v)
    assert cache.positions(0).tolist() == [[[0, 1, 2, 3]]] * 2
    cache.append(0, *kv(B=2, G=3, T=1), positions=torch.tensor([[10], [20]]))
    assert cache.positions(0)[:, 0, -1].tolist() == [10, 20]
    cache.keep(0, torch.tensor([[[0, 4]] * 3, [[1, 4]] * 3]))  # per sequence and head: positions go along
    assert cache.positions(0).shape == (2, 3, 2) and cache.positions(0)[1, 2].tolist() == [1, 20]
    cache.set(0, *cache.get(0), torch.tensor([[[5, 6]], [[7, 8]]]))
    assert cache.positions(0).tolist() == [[[5, 6]], [[7, 8]]]
    with pytest.raises(ValueError, match=r"positions must be \(batch, tokens\) = \(2, 1\)"):
        cache.append(0, *kv(B=2, G=3, T=1), positions=torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="1 or kv_heads"):
        cache.set(0, *cache.get(0), torch.zeros(2, 2, 2, dtype=torch.long))


def test_keep_shared_and_per_head():
    cache = KVCache(1)
    k, v = kv(B=2, G=3, T=6)
    cache.append(0, k, v)
    cache.keep(0, torch.tensor([0, 4, 5]))
    assert torch.equal(cache.get(0)[0], k[:, :, [0, 4, 5]]) and cache.length == 3
    per_head = torch.tensor([[[0, 1], [1, 2], [0, 2]], [[2, 1], [0, 0], [1, 2]]])  # (B=2, G=3, 2)
    cache.keep(0, per_head)
    kept = cache.get(0)[1]
    for b in range(2):
        for h in range(3):
            want = v[:, :, [0, 4, 5]][b, h, per_head[b, h]]
            assert torch.equal(kept[b, h], want)


@pytest.mark.parametrize(
    "index, error, message",
    [
        (torch.tensor([0, 6]), IndexError, "holds 6 tokens"),
        (torch.tensor([-1]), IndexError, "out of range"),
        (torch.tensor([0.0, 1.0]), ValueError, "integer tensor"),
        ([0, 1], ValueError, "integer tensor"),
        (torch.zeros(2, 2, 2, dtype=torch.long), ValueError, r"\(batch, kv_heads, n\) = \(2, 3 or 1, n\)"),
    ],
)
def test_bad_keep_index(index, error, message):
    cache = KVCache(1)
    cache.append(0, *kv(B=2, G=3, T=6))
    with pytest.raises(error, match=message):
        cache.keep(0, index)


def test_formula_and_its_checks():
    assert kv_bytes_per_token(30, 3, 64) == 46080  # SmolLM2-135M in float32
    assert kv_bytes_per_token(32, 8, 128, torch.float16) == 131072
    with pytest.raises(ValueError, match="num_kv_heads"):
        kv_bytes_per_token(30, 0, 64)


def test_rope_rotations_compose():
    """Rotating by a then by b equals rotating by a + b: what lets StreamingLLM renumber cached keys."""
    D = 8
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2) / D))

    def cs(p):
        ang = torch.cat([p * inv, p * inv])
        return ang.cos(), ang.sin()

    x = torch.randn(D)
    assert torch.allclose(apply_rope(apply_rope(x, *cs(5.0)), *cs(-3.0)), apply_rope(x, *cs(2.0)), atol=1e-5)


# ------------------------------------------------------------------------------------ policies
def test_sliding_window_and_sinks():
    assert SlidingWindow(4).keep(10).tolist() == [6, 7, 8, 9]
    assert SlidingWindow(4).keep(3).tolist() == [0, 1, 2]
    assert AttentionSinks(5, sinks=2).keep(10).tolist() == [0, 1, 7, 8, 9]
    assert AttentionSinks(5, sinks=2).keep(4).tolist() == [0, 1, 2, 3]


def test_heavy_hitters_keep_recent_and_heaviest():
    scores = torch.tensor([[[5.0, 0.1, 3.0, 0.2, 0.0, 0.0]]])  # (B=1, G=1, L=6); last two are recent
    keep = HeavyHitters(4, recent=2).keep(6, scores)
    assert keep.tolist() == [[[0, 2, 4, 5]]]
    with pytest.raises(ValueError, match="accumulated attention"):
        HeavyHitters(4).keep(6, None)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SlidingWindow(0), "budget"),
        (lambda: SlidingWindow(2.5), "budget"),
        (lambda: AttentionSinks(4, sinks=4), "sinks"),
        (lambda: HeavyHitters(4, recent=5), "recent"),
    ],
)
def test_bad_policies(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_babi_text_is_long_plain_statements():
    text = babi_text()
    assert text.startswith("Mary moved to the bathroom. John went to the hallway.")
    assert "?" not in text and len(text) > 50_000  # about 13,000 tokens


# ------------------------------------------------------------------------------------ on SmolLM2
@pytest.fixture(scope="module")
def smollm():
    from wmlib.models import load_causal_lm

    model, tok = load_causal_lm("smollm2-135m")
    return model, tok, CachedDecoder(model)


def test_prefill_and_steps_match_a_full_forward(smollm):
    model, tok, dec = smollm
    ids = tok("Mary moved to the bathroom. John went to the hallway. Where is Mary?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        want = model(ids).logits[0]
        cache = dec.new_cache()
        got = [dec.prefill(ids[:, :5], cache, all_logits=True)[0]]
        for t in range(5, ids.shape[1]):
            got.append(dec.step(ids[:, t], cache))
    got = torch.cat(got)
    assert (got - want).abs().max() < 1e-3
    assert cache.length == ids.shape[1]
    assert cache.nbytes() == ids.shape[1] * dec.bytes_per_token() == ids.shape[1] * 46080


@pytest.mark.slow  # the same property on every family's tiny model: tests/test_families.py
def test_greedy_matches_generate_and_uncached(smollm):
    model, tok, dec = smollm
    prompts = ["The capital of France is", "Mary moved to the bathroom. John went to the hallway. Mary"]
    for text in prompts:
        ids = tok(text, return_tensors="pt")["input_ids"]
        new, cache = greedy_decode(dec, ids, 12)
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                             eos_token_id=None)[:, ids.shape[1]:]
        assert torch.equal(new, ref), (tok.decode(new[0]), tok.decode(ref[0]))
        assert torch.equal(uncached_greedy_decode(dec, ids, 12), new)
        assert cache.length == ids.shape[1] + 11 and cache.nbytes() == cache.length * 46080


def test_batched_greedy(smollm):
    model, tok, dec = smollm
    ids = tok(["one two three four", "five six seven eight"], return_tensors="pt")["input_ids"]
    assert ids.shape[0] == 2
    new, _ = greedy_decode(dec, ids, 3)
    for b in range(2):
        assert torch.equal(greedy_decode(dec, ids[b:b + 1], 3)[0][0], new[b])


@pytest.mark.parametrize(
    "ids, message",
    [
        (torch.tensor([1, 2, 3]), "batch, tokens"),
        (torch.tensor([[1.0, 2.0]]), "integer tensor"),
        (torch.tensor([[1, 49152]]), r"\[0, 49152\)"),
        (torch.zeros(1, 0, dtype=torch.long), "no tokens"),
    ],
)
def test_bad_token_ids(smollm, ids, message):
    _, _, dec = smollm
    with pytest.raises(ValueError, match=message):
        greedy_decode(dec, ids, 2)


def test_bad_decoder_inputs(smollm):
    model, _, dec = smollm
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_decode(dec, ids, 0)
    with pytest.raises(ValueError, match="cache must be a KVCache with 30 layers"):
        dec.forward(ids, KVCache(2))
    cache = dec.new_cache()
    dec.prefill(ids, cache)
    with pytest.raises(ValueError, match="empty cache"):
        dec.prefill(ids, cache)
    with pytest.raises(ValueError, match="one token per sequence"):
        dec.step(ids, cache)
    with pytest.raises(ValueError, match="decoder families only: llama"):
        CachedDecoder(torch.nn.Linear(2, 2))


def test_streaming_full_budget_equals_full_forward(smollm):
    model, tok, dec = smollm
    ids = tok(babi_text()[:400], return_tensors="pt")["input_ids"][:, :60]
    with torch.inference_mode():
        logp = model(ids).logits.log_softmax(-1)
    want = -logp[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    full = stream_under_budget(dec, ids, None)
    assert (full.nll[0] - want).abs().max() < 1e-3
    # a budget larger than the text evicts nothing: the same numbers, token by token
    roomy = stream_under_budget(dec, ids, SlidingWindow(100))
    assert torch.allclose(roomy.nll, full.nll, atol=1e-4)


@pytest.mark.parametrize("make", [SlidingWindow, lambda b, positions: AttentionSinks(b, 4, positions), HeavyHitters])
@pytest.mark.parametrize("positions", ["original", "cache"])
def test_streaming_respects_the_budget(tiny_lm, make, positions):
    """Bookkeeping of every policy, on a tiny random Llama (SmolLM2 reads the same code, 20x slower)."""
    model, tok = tiny_lm("llama")
    dec = CachedDecoder(model)
    policy = make(16, positions=positions)
    ids = tok(babi_text()[:400], return_tensors="pt")["input_ids"][:, :40].repeat(2, 1)
    seen = []
    res = stream_under_budget(dec, ids, policy, on_step=lambda t, kept: seen.append((t, kept[0].shape[-1])))
    assert seen == [(t, min(t + 1, 16)) for t in range(40)]
    assert res.nll.shape == (2, 39) and torch.isfinite(res.nll).all()
    assert res.max_cache_tokens == 16
    assert torch.allclose(res.nll[0], res.nll[1], atol=1e-4)  # identical rows, identical results
    for kept in res.kept:
        assert kept.shape == (2, model.config.num_key_value_heads, 16)
        assert torch.all(kept[..., 1:] > kept[..., :-1])  # reading order
        assert torch.all(kept[..., -1] == 39)  # the newest token is always kept
    if isinstance(policy, SlidingWindow):
        assert res.kept[0][0, 0].tolist() == list(range(24, 40))
    if isinstance(policy, AttentionSinks):
        assert res.kept[0][0, 0].tolist() == [0, 1, 2, 3] + list(range(28, 40))


@pytest.mark.slow  # the same property on every family's tiny model: tests/test_families.py
@pytest.mark.parametrize("policy, sinks", [(SlidingWindow(8), 0), (AttentionSinks(8, sinks=2), 2)])
def test_evicting_cache_equals_a_banded_mask(smollm, policy, sinks):
    """Evicting the oldest tokens from a cache (original positions) is the same computation as one
    ordinary forward pass in which query i may see keys i - (budget - sinks) .. i and the sinks,
    because every key and value was computed once, when its token was read. Checked against
    Hugging Face's model with that mask: an independent implementation."""
    model, tok, dec = smollm
    ids = tok(babi_text()[:400], return_tensors="pt")["input_ids"][:, :40]
    res = stream_under_budget(dec, ids, policy)
    i = torch.arange(40)
    allowed = (i[None, :] <= i[:, None]) & ((i[:, None] - i[None, :] <= 8 - sinks) | (i[None, :] < sinks))
    with torch.inference_mode():
        logp = model(ids, attention_mask=allowed[None, None]).logits.log_softmax(-1)
    want = -logp[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    assert (res.nll[0] - want).abs().max() < 1e-3


@pytest.mark.slow  # the same property on every family's tiny model: tests/test_families.py
@pytest.mark.parametrize("positions", ["original", "cache"])
def test_renumbered_keys_are_rotated_to_their_new_positions(smollm, positions):
    """A key of layer 0 depends only on its token and its position, so after streaming the cached
    keys of layer 0 must equal those of the kept tokens computed afresh: at their positions in the
    text ('original'), or at 0..L-1 ('cache', StreamingLLM), which checks the re-rotation."""
    _, tok, dec = smollm
    ids = tok(babi_text()[:400], return_tensors="pt")["input_ids"][:, :30]
    res = stream_under_budget(dec, ids, AttentionSinks(8, sinks=2, positions=positions))
    kept = res.kept[0][0, 0]
    assert kept.tolist() == [0, 1, 24, 25, 26, 27, 28, 29]
    pos = kept if positions == "original" else torch.arange(8)
    fresh = dec.new_cache()
    dec.forward(ids[:, kept], fresh, positions=pos[None])
    assert (res.cache.get(0)[0] - fresh.get(0)[0]).abs().max() < 1e-4
    assert torch.equal(res.cache.positions(0)[0, 0], pos)
    assert (res.cache.get(0)[1] - fresh.get(0)[1]).abs().max() < 1e-5


@pytest.mark.slow  # the same property on every family's tiny model: tests/test_families.py
def test_per_row_policies_equal_separate_runs(smollm):
    """PerRow batches policies; each row gets what it would get alone (renumbering included)."""
    _, tok, dec = smollm
    ids = tok(babi_text()[:400], return_tensors="pt")["input_ids"][:, :36]
    policies = [SlidingWindow(12), AttentionSinks(12, 2, positions="cache"), HeavyHitters(12)]
    together = stream_under_budget(dec, ids.repeat(3, 1), PerRow(policies, rows_each=1))
    for i, p in enumerate(policies):
        alone = stream_under_budget(dec, ids, p)
        assert (together.nll[i] - alone.nll[0]).abs().max() < 1e-3, p
        assert torch.equal(together.kept[5][i], alone.kept[5][0])


def test_bad_streaming_arguments(smollm):
    _, _, dec = smollm
    ids = torch.tensor([[1, 2, 3, 4]])
    with pytest.raises(ValueError, match="positions"):
        SlidingWindow(2, positions="absolute")
    with pytest.raises(ValueError, match="2 policies x 3 rows each = 6"):
        stream_under_budget(dec, ids, PerRow([SlidingWindow(2), HeavyHitters(2)], rows_each=3))
    with pytest.raises(ValueError, match="share one budget"):
        PerRow([SlidingWindow(2), SlidingWindow(3)], rows_each=1)
    with pytest.raises(ValueError, match="EvictionPolicy"):
        stream_under_budget(dec, ids, "window")


def test_the_cache_owns_its_storage_even_for_views_of_a_fused_projection():
    """GPT-NeoX computes q, k and v in one matrix product: the cache must not keep that whole
    output alive through views of it (its bytes then equal the formula for every family)."""
    from wmlib.kv_cache import KVCache

    qkv = torch.randn(1, 2, 5, 3 * 4)  # (B, G, T, 3 * D): keys and values are slices of it
    cache = KVCache(num_layers=1)
    cache.append(0, qkv[..., 4:8], qkv[..., 8:12])
    assert cache.nbytes() == 2 * 1 * 2 * 5 * 4 * 4
