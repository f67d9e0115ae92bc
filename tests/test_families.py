"""Every supported decoder family, on a tiny random model built offline (wmlib.testing):

- the cache written out (wmlib.kv_cache) gives the Hugging Face model's own logits, the tokens of
  ``model.generate`` under plain greedy decoding, and those of recomputation;
- eviction with original positions equals one forward pass with a banded mask (the model's own
  sliding windows included), and renumbered keys equal keys computed afresh at their new positions;
- induction scores, copying scores and zero and mean ablation run, and an ablation equals zeroing
  the head's columns of the output projection;
- any other family is refused with the list of supported ones.
"""

import pytest
import torch
from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

from wmlib.families import SUPPORTED, layout_of
from wmlib.induction import ablate_heads, head_means, induction_test, repeated_random_tokens
from wmlib.kv_cache import (AttentionSinks, CachedDecoder, HeavyHitters, PerRow, SlidingWindow, greedy_decode,
                            stream_under_budget, uncached_greedy_decode)
from wmlib.testing import FAMILIES, TOKENIZERS

TEXT = ("Mary moved to the bathroom. John went to the hallway. The secret number is 47291. "
        "Sandra travelled to the garden. Daniel journeyed to the office. Where is Mary? Mary is in the")


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tiny_lm):
    model, tok = tiny_lm(request.param)
    return request.param, model, tok, CachedDecoder(model)


def text_ids(tok, n=48):
    ids = tok(TEXT * 3, return_tensors="pt")["input_ids"][:, :n]
    assert ids.shape[1] == n
    return ids


def plain_greedy(model, ids, n):
    """``generate`` told to decode greedily and nothing else, whatever the checkpoint's generation_config
    says (these models ship sampling and repetition penalties, as hub checkpoints do)."""
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=n, min_new_tokens=n, eos_token_id=None,
                              pad_token_id=model.config.pad_token_id)
    saved, model.generation_config = model.generation_config, config
    try:
        out = model.generate(ids, attention_mask=torch.ones_like(ids))
    finally:
        model.generation_config = saved
    return out[:, ids.shape[1]:]


def test_tokenizers_cover_the_cases(tiny_lm):
    for fam in FAMILIES:
        _, tok = tiny_lm(fam)
        ids = tok("The secret number is 47291.")["input_ids"]
        has_bos = ids[0] == tok.convert_tokens_to_ids("<s>")
        assert has_bos == TOKENIZERS[fam]["bos"], fam
        pieces = [t for t in tok.convert_ids_to_tokens(ids) if any(c.isdigit() for c in t)]
        if TOKENIZERS[fam]["digits"] == "single":
            assert pieces == list("47291"), (fam, pieces)
        else:
            assert len(pieces) < 5 and "".join(pieces).lstrip("Ġ") == "47291", (fam, pieces)
        assert (tok.chat_template is not None) == (TOKENIZERS[fam]["chat"] is not None)


def test_steps_match_the_models_forward(family):
    fam, model, tok, dec = family
    ids = text_ids(tok)  # longer than the sliding windows of mistral (16) and gemma (12)
    with torch.inference_mode():
        want = model(ids).logits[0]
        cache = dec.new_cache()
        got = [dec.prefill(ids[:, :7], cache, all_logits=True)[0]]
        for t in range(7, ids.shape[1]):
            got.append(dec.step(ids[:, t], cache))
    assert (torch.cat(got) - want).abs().max() < 1e-4, fam
    assert cache.nbytes() == ids.shape[1] * dec.bytes_per_token()


def test_greedy_matches_generate_and_recomputation(family):
    fam, model, tok, dec = family
    ids = text_ids(tok, 12)
    new, cache = greedy_decode(dec, ids, 30)
    assert torch.equal(new, plain_greedy(model, ids, 30)), fam
    assert torch.equal(new, uncached_greedy_decode(dec, ids, 30)), fam
    assert cache.length == 12 + 29


def banded_logits(model, ids, allowed):
    """The model's own forward pass in which query i may see key j only where allowed[i, j] (and
    where the model's sliding window lets it)."""
    L = ids.shape[1]
    i = torch.arange(L)
    layout = layout_of(model)

    def additive(window):
        ok = allowed if window is None else allowed & (i[:, None] - i[None, :] < window)
        return torch.zeros(1, 1, L, L).masked_fill(~ok, torch.finfo(torch.float32).min)

    kinds = getattr(model.config, "layer_types", None)
    if model.config.model_type in ("gemma2", "gemma3_text", "qwen2", "qwen3") and kinds:
        mask = {kind: additive(model.config.sliding_window if kind == "sliding_attention" else None)
                for kind in set(kinds)}
    else:
        mask = additive(layout.windows[0])
    with torch.inference_mode():
        return model(ids, attention_mask=mask).logits


@pytest.mark.parametrize("budget, sinks", [(8, 0), (8, 2), (20, 3)])
def test_eviction_equals_a_banded_mask(family, budget, sinks):
    fam, model, tok, dec = family
    ids = text_ids(tok, 40)
    policy = SlidingWindow(budget) if sinks == 0 else AttentionSinks(budget, sinks=sinks)
    res = stream_under_budget(dec, ids, policy)
    i = torch.arange(40)
    allowed = (i[None, :] <= i[:, None]) & ((i[:, None] - i[None, :] <= budget - sinks) | (i[None, :] < sinks))
    logp = banded_logits(model, ids, allowed).log_softmax(-1)
    want = -logp[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    assert (res.nll[0] - want).abs().max() < 1e-4, fam


def test_renumbered_keys_equal_fresh_keys(family):
    """Layer 0's keys depend only on the token and its position: after streaming with StreamingLLM's
    renumbering they must equal those computed afresh at positions 0..L-1 (partial RoPE included)."""
    fam, model, tok, dec = family
    ids = text_ids(tok, 30)
    res = stream_under_budget(dec, ids, AttentionSinks(8, sinks=2, positions="cache"))
    kept = res.kept[0][0, 0]
    assert kept.tolist() == [0, 1, 24, 25, 26, 27, 28, 29]
    fresh = dec.new_cache()
    dec.forward(ids[:, kept], fresh)
    assert (res.cache.get(0)[0] - fresh.get(0)[0]).abs().max() < 1e-4, fam
    assert torch.equal(res.cache.positions(0)[0, 0], torch.arange(8))


def test_policies_side_by_side_share_their_prefix(family):
    fam, model, tok, dec = family
    ids = text_ids(tok, 30).repeat(2, 1)
    policies = [SlidingWindow(10), AttentionSinks(10, 2, positions="cache"), HeavyHitters(10)]
    together = stream_under_budget(dec, ids, PerRow(policies, rows_each=2))  # 2 rows, read under 3 policies
    assert together.nll.shape == (6, 29) and together.max_cache_tokens == 10
    for i, p in enumerate(policies):
        alone = stream_under_budget(dec, ids[:1], p)
        assert (together.nll[2 * i] - alone.nll[0]).abs().max() < 1e-4, (fam, p)


def test_induction_scores_and_ablations_run(family):
    fam, model, tok, dec = family
    g = torch.Generator().manual_seed(0)
    prefix = [tok.bos_token_id] if TOKENIZERS[fam]["bos"] else []
    tokens = repeated_random_tokens(3, 10, len(tok), g, prefix, tok.all_special_ids)
    res = induction_test(model, tokens, 10, start=len(prefix), batch_size=2)
    N, H = len(layout_of(model).layers), model.config.num_attention_heads
    assert res.induction.shape == res.previous.shape == res.copying.shape == (N, H)
    assert res.copying_by_seq.shape == (3, N, H) and torch.isfinite(res.copying_by_seq).all()
    means = head_means(model, tokens)
    with ablate_heads(model, [(1, 0), (2, 3)]):
        zero = induction_test(model, tokens, 10, start=len(prefix), batch_size=2)
    with ablate_heads(model, [(1, 0), (2, 3)], means=means):
        mean = induction_test(model, tokens, 10, start=len(prefix), batch_size=2)
    assert not torch.allclose(zero.loss, res.loss) and not torch.allclose(mean.loss, zero.loss)


def test_ablation_equals_zeroing_the_heads_columns(family):
    """Zero-ablation of head h is the model with the h-th block of columns of the output projection
    set to zero; mean-ablation adds that block times the head's mean to the projection's output."""
    fam, model, tok, dec = family
    ids = text_ids(tok, 20)
    layout = layout_of(model)
    proj, D = layout.out_proj(layout.layers[2]), layout.head_dim
    means = head_means(model, ids)
    with torch.no_grad():
        with ablate_heads(model, [(2, 1)]):
            zero = model(ids).logits
        with ablate_heads(model, [(2, 1)], means=means):
            mean = model(ids).logits
        saved_w = proj.weight.detach().clone()
        saved_b = None if proj.bias is None else proj.bias.detach().clone()
        try:
            block = proj.weight[:, D:2 * D].clone()
            proj.weight[:, D:2 * D] = 0
            want_zero = model(ids).logits
            shift = block @ means[2, 1]
            if proj.bias is None:
                proj.bias = torch.nn.Parameter(shift)
            else:
                proj.bias += shift
            want_mean = model(ids).logits
        finally:
            proj.weight.copy_(saved_w)
            if saved_b is None:
                proj.bias = None
            else:
                proj.bias.copy_(saved_b)
    assert (zero - want_zero).abs().max() < 1e-4 and (mean - want_mean).abs().max() < 1e-4, fam


def test_bf16_checks_follow_the_dtype(tiny_model_dir):
    """In bfloat16 the cache still reproduces the model's logits, at bfloat16's precision."""
    from wmlib.models import load_causal_lm

    model, tok = load_causal_lm(str(tiny_model_dir("qwen3")))
    model.to(torch.bfloat16)
    dec = CachedDecoder(model)
    ids = text_ids(tok, 24)
    with torch.inference_mode():
        want = model(ids).logits[0].float()
        cache = dec.new_cache()
        got = [dec.prefill(ids[:, :5], cache, all_logits=True)[0]]
        for t in range(5, 24):
            got.append(dec.step(ids[:, t], cache))
    gap = (torch.cat(got).float() - want).abs().max()
    assert gap < 0.1 * want.abs().max(), gap
    assert cache.nbytes() == 24 * dec.bytes_per_token() and dec.bytes_per_token() % 2 == 0


def test_other_families_are_refused():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=16, n_embd=8, n_layer=1, n_head=2)).eval()
    for make in (lambda: CachedDecoder(gpt2), lambda: ablate_heads(gpt2, [(0, 0)]).__enter__(),
                 lambda: CachedDecoder(torch.nn.Linear(2, 2))):
        with pytest.raises(ValueError, match="gpt_neox .GPT-NeoX and Pythia.") as err:
            make()
        assert all(name in str(err.value) for name in SUPPORTED)


def test_first_divergence_names_the_step_and_its_margin(tiny_lm):
    from wmlib.kv_cache import first_divergence

    model, tok = tiny_lm("qwen3")
    dec = CachedDecoder(model)
    ids = text_ids(tok, 12)
    new, _ = greedy_decode(dec, ids, 6)
    assert first_divergence(dec, ids, new, new) == (None, 0.0)
    other = new.clone()
    other[0, 3] = (new[0, 3] + 1) % model.config.vocab_size
    at, margin = first_divergence(dec, ids, new, other)
    assert at == 3 and margin > 0  # greedy chose its own token, so its logit is the larger
