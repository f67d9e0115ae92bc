"""wmlib.induction: scores on hand-built matrices, a tiny random Llama, and the real SmolLM2."""

import pytest
import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

from wmlib.attention_maps import model_attentions
from wmlib.cli import main
from wmlib.induction import (ablate_heads, copy_losses, induction_scores, induction_test, per_token_loss,
                             previous_token_scores, repeated_random_tokens, top_heads)


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def perfect_induction_head(T, start):
    L = start + 2 * T
    w = torch.zeros(L, L)
    w[:, 0] = 1.0
    for i in range(start + T, L):
        w[i] = 0
        w[i, i - T + 1] = 1.0
    return w


def uniform_causal(L):
    return torch.ones(L, L).tril() / torch.arange(1, L + 1)[:, None]


def test_repeated_tokens_layout():
    g = torch.Generator().manual_seed(0)
    x = repeated_random_tokens(5, 8, vocab_size=20, generator=g, prefix=[7], exclude=[0, 1, 2, 7])
    assert x.shape == (5, 17) and x.dtype == torch.int64
    assert torch.all(x[:, 0] == 7) and torch.equal(x[:, 1:9], x[:, 9:])
    assert not torch.isin(x[:, 1:], torch.tensor([0, 1, 2, 7])).any() and x.max() < 20
    again = repeated_random_tokens(5, 8, 20, torch.Generator().manual_seed(0), [7], [0, 1, 2, 7])
    assert torch.equal(x, again), "the same generator seed gives the same tokens"


def test_scores_of_known_patterns():
    T, start = 6, 1
    assert induction_scores(perfect_induction_head(T, start), T, start).item() == 1.0
    L = start + 2 * T
    # uniform causal attention: query i gives 1/(i+1) to each key
    want = torch.tensor([1 / (i + 1) for i in range(start + T, L)]).mean()
    assert torch.isclose(induction_scores(uniform_causal(L), T, start), want)
    prev = torch.zeros(L, L)
    prev[0, 0] = 1
    prev[torch.arange(1, L), torch.arange(0, L - 1)] = 1
    assert previous_token_scores(prev, start).item() == 1.0
    assert induction_scores(prev, T, start).item() == 0.0
    batch = torch.stack([perfect_induction_head(T, start), uniform_causal(L)])[None]  # (1, 2, L, L)
    assert induction_scores(batch, T, start).shape == (1, 2)


def test_scores_reject_wrong_layouts():
    with pytest.raises(ValueError, match="start \\+ 2 \\* length"):
        induction_scores(torch.rand(2, 13, 13), 5, 1)
    with pytest.raises(ValueError, match="square"):
        induction_scores(torch.rand(13, 12), 6, 1)
    with pytest.raises(ValueError, match="no query"):
        previous_token_scores(torch.rand(3, 3), start=2)
    with pytest.raises(ValueError, match="length >= 2"):
        repeated_random_tokens(2, 1, 10)
    with pytest.raises(ValueError, match="fewer than 2"):
        repeated_random_tokens(2, 4, 3, exclude=[0, 1])


def test_per_token_loss_matches_the_models_own_loss(tiny_llama):
    ids = torch.randint(64, (3, 12), generator=torch.Generator().manual_seed(2))
    loss = per_token_loss(tiny_llama, ids, batch_size=2)
    assert loss.shape == (3, 11)
    with torch.no_grad():
        ref = tiny_llama(ids, labels=ids).loss
    assert torch.isclose(loss.mean(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="length >= 2"):
        per_token_loss(tiny_llama, ids[:, :1])


def test_copy_losses_slices():
    T, start = 4, 1
    # loss[:, t] is the loss of predicting token t+1: use the target position as the value
    loss = torch.arange(1, start + 2 * T, dtype=torch.float)[None].repeat(2, 1)
    first, second = copy_losses(loss, T, start)
    assert torch.equal(first, torch.full((2,), (1 + 2 + 3 + 4) / 4))  # targets r_1..r_T at positions 1..4
    assert torch.equal(second, torch.full((2,), (6 + 7 + 8) / 3))  # targets r_2..r_T of the second copy
    with pytest.raises(ValueError, match="expected"):
        copy_losses(loss, T + 1, start)


def test_induction_test_agrees_with_its_parts(tiny_llama):
    T, start = 6, 1
    tokens = repeated_random_tokens(3, T, 64, torch.Generator().manual_seed(3), prefix=[0], exclude=[0])
    res = induction_test(tiny_llama, tokens, T, start, batch_size=2)
    w = model_attentions(tiny_llama, tokens)
    assert res.induction.shape == res.previous.shape == (3, 4)
    assert torch.allclose(res.induction, induction_scores(w, T, start).mean(0), atol=1e-6)
    assert torch.allclose(res.previous, previous_token_scores(w, start).mean(0), atol=1e-6)
    assert torch.allclose(res.loss, per_token_loss(tiny_llama, tokens), atol=1e-5)
    assert torch.allclose(res.first_token, w[..., 1:, 0].mean((0, -1)), atol=1e-6)
    assert torch.allclose(res.first_token_by_seq, w[..., 1:, 0].mean(-1), atol=1e-6)
    assert torch.allclose(res.example, w[0])
    with pytest.raises(ValueError, match="start \\+ 2 \\* length"):
        induction_test(tiny_llama, tokens, T + 1, start)


def test_top_heads_order():
    scores = torch.tensor([[0.1, 0.9], [0.5, 0.2]])
    assert [(layer, head) for layer, head, _ in top_heads(scores, 3)] == [(0, 1), (1, 0), (1, 1)]
    with pytest.raises(ValueError, match="layers, heads"):
        top_heads(scores.flatten())


def test_ablation_zeroes_exactly_one_head(tiny_llama):
    ids = torch.randint(64, (1, 9), generator=torch.Generator().manual_seed(4))
    attn = tiny_llama.model.layers[1].self_attn
    seen = {}
    handle = attn.o_proj.register_forward_hook(lambda m, args, out: seen.__setitem__("x", args[0].clone()))
    try:
        with torch.no_grad():
            base = tiny_llama(ids).logits
            with ablate_heads(tiny_llama, [(1, 2)]):
                ablated = tiny_llama(ids).logits
                x = seen["x"]
            after = tiny_llama(ids).logits
    finally:
        handle.remove()
    d = attn.head_dim
    assert torch.all(x[..., 2 * d:3 * d] == 0) and x[..., :2 * d].abs().sum() > 0 and x[..., 3 * d:].abs().sum() > 0
    assert not torch.allclose(base, ablated) and torch.equal(base, after), "the hook must be removed afterwards"


def test_ablation_rejects_bad_heads(tiny_llama):
    with pytest.raises(ValueError, match="does not exist"):
        with ablate_heads(tiny_llama, [(3, 0)]):
            pass
    with pytest.raises(ValueError, match="does not exist"):
        with ablate_heads(tiny_llama, [(0, 4)]):
            pass
    bert = BertModel(BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=8))
    with pytest.raises(ValueError, match="decoder families only"):
        with ablate_heads(bert, [(0, 0)]):
            pass


def test_cli_on_a_tiny_model(tiny_model_dir, capsys):
    assert main(["induction", "--model", str(tiny_model_dir("llama")), "--sequences", "2", "--length", "5",
                 "--top", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "first copy" in out and "second copy" in out and out.count(": ") >= 3 and "copying" in out


@pytest.mark.slow
def test_smollm2_has_induction_heads():
    """The real model: copying cuts the loss, and a few heads do the looking back."""
    from wmlib.models import load_causal_lm

    model, tok = load_causal_lm("smollm2-135m")
    T = 20
    tokens = repeated_random_tokens(2, T, len(tok), torch.Generator().manual_seed(0), [tok.bos_token_id],
                                    tok.all_special_ids)
    res = induction_test(model, tokens, T, start=1, batch_size=2)
    first, second = res.copy_losses()
    assert second.mean() < first.mean() - 5, (first, second)
    best = top_heads(res.induction, 3)
    assert best[0][2] > 0.5 and res.induction.mean() < 0.1, (best, res.induction.mean())
    assert all(10 <= layer for layer, _, _ in best), "induction heads sit in the upper half of the stack"
