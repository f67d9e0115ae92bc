"""wmlib.transformer and wmlib.synthetic."""

import pytest
import torch
from torch import nn

from wmlib.attention import causal_mask
from wmlib.synthetic import AssociativeRecall, answers_correct, train_recall
from wmlib.transformer import (GPT, DecoderBlock, EncoderBlock, FeedForward, GPTConfig, RMSNorm, SwiGLU,
                               next_token_probs)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_equals_torch(norm_first):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    ours = EncoderBlock(16, 4, 32, norm_first=norm_first, activation="relu").copy_from_torch(theirs).eval()
    x = torch.randn(3, 6, 16)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[1, 4:] = True
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
        real = ~pad
        masked = ours(x, mask=~pad[:, None, None, :])[real]
        assert torch.allclose(masked, theirs(x, src_key_padding_mask=pad)[real], atol=1e-5)


def test_prenorm_gelu_causal_block_equals_torch_encoder_layer_with_a_causal_mask():
    """The GPT block (pre-norm, GELU, causal self-attention, no cross-attention) is
    nn.TransformerEncoderLayer(norm_first=True, activation="gelu") given a causal mask."""
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu", batch_first=True,
                                        norm_first=True).eval()
    ours = EncoderBlock(16, 4, 32, norm_first=True, causal=True, activation="gelu").copy_from_torch(theirs).eval()
    x = torch.randn(3, 7, 16)
    forbidden = ~causal_mask(7)  # torch's boolean masks mark what may NOT be attended
    with torch.no_grad():
        want = theirs(x, src_mask=forbidden, is_causal=True)
        assert torch.allclose(ours(x), want, atol=1e-5)
        assert not torch.allclose(theirs(x), want, atol=1e-3)  # the mask matters


def test_decoder_block_equals_torch_decoder_layer():
    torch.manual_seed(0)
    theirs = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, activation="gelu", batch_first=True,
                                        norm_first=True).eval()
    ours = DecoderBlock(16, 4, 32, activation="gelu").copy_from_torch(theirs).eval()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 6:] = True  # the second memory has 3 padding positions
    causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.bool)
    with torch.no_grad():
        want = theirs(x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=pad)
        got = ours(x, memory, memory_mask=~pad[:, None, None, :])
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="norm_first=True"):
        DecoderBlock(16, 4, 32).copy_from_torch(nn.TransformerDecoderLayer(16, 4, 32, batch_first=True))


def test_gpt_is_causal_and_shapes():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=30, max_len=12)).eval()
    x = torch.randint(30, (2, 10))
    y = x.clone()
    y[:, 6] = (y[:, 6] + 1) % 30
    with torch.no_grad():
        a, b = gpt(x), gpt(y)
    assert a.shape == (2, 10, 30)
    assert torch.equal(a[:, :6], b[:, :6]) and not torch.equal(a[:, 6:], b[:, 6:])


def test_gpt_weight_tying_counts_parameters_once():
    untied = GPT(GPTConfig(vocab_size=30, d_model=16, d_ff=32))
    tied = GPT(GPTConfig(vocab_size=30, d_model=16, d_ff=32, tie_weights=True))
    assert untied.num_parameters() - tied.num_parameters() == 30 * 16
    assert tied.head.weight is tied.tok_emb.weight


def test_gpt_input_errors():
    gpt = GPT(GPTConfig(vocab_size=10, max_len=4))
    with pytest.raises(ValueError, match="exceeds max_len=4"):
        gpt(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        gpt(torch.tensor([[3, 10]]))
    with pytest.raises(ValueError, match="integer token ids"):
        gpt(torch.zeros(1, 3))


def test_decoder_block_cross_attention():
    blk = DecoderBlock(16, 2, 32).eval()
    out = blk(torch.randn(2, 5, 16), torch.randn(2, 9, 16))
    assert out.shape == (2, 5, 16)
    with pytest.raises(ValueError, match="EncoderBlock"):
        blk(torch.randn(2, 5, 16), None)


@pytest.mark.parametrize("interleaved", [False, True])
def test_associative_recall_answers_are_in_context(interleaved):
    task = AssociativeRecall(n_pairs=5, interleaved=interleaved)
    x, y = task.sample(200, torch.Generator().manual_seed(1))
    assert x.shape == (200, task.seq_len) and x.max() < task.vocab_size and x.min() >= 0
    for seq, ans in zip(x, y):
        text = task.decode(seq).split()
        query, value = text[-1].rstrip("?"), task.token_str(int(ans))
        if interleaved:
            pairs = dict(zip(text[0:-2:2], text[1:-2:2]))
        else:
            pairs = dict(t.split(":") for t in text[:-1])
        assert len(pairs) == 5 and pairs[query] == value


def test_associative_recall_is_seeded_and_validated():
    a = AssociativeRecall().sample(4, torch.Generator().manual_seed(3))
    b = AssociativeRecall().sample(4, torch.Generator().manual_seed(3))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    with pytest.raises(ValueError, match="cannot exceed n_keys"):
        AssociativeRecall(n_pairs=30, n_keys=26)
    for bad in ({"n_pairs": 0}, {"n_pairs": 2.5}, {"n_values": 1}, {"n_keys": "26"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AssociativeRecall(**bad)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        AssociativeRecall().token_str(10_000)


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-5, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def test_from_hf_reproduces_a_llama_models_logits(tiny_llama):
    ours = GPT.from_hf(tiny_llama)
    c = ours.config
    assert (c.norm, c.mlp, c.positions, c.num_kv_heads, c.bias) == ("rmsnorm", "swiglu", "rope", 2, False)
    assert ours.num_parameters() == sum(p.numel() for p in tiny_llama.parameters())
    assert ours.head.weight is ours.tok_emb.weight
    x = torch.randint(64, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(ours(x), tiny_llama(x).logits, atol=1e-5)
    greedy = ours.generate(x[:1], 5, greedy=True)
    theirs = tiny_llama.generate(x[:1], max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(greedy, theirs)


def test_from_hf_rejects_other_architectures(tiny_llama):
    class Fake(nn.Module):
        config = type("C", (), {"model_type": "gpt2"})()

    with pytest.raises(ValueError, match="Llama-architecture"):
        GPT.from_hf(Fake())


def test_rmsnorm_and_config_switches():
    x = torch.randn(3, 8) * 5
    y = RMSNorm(8)(x)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(3), atol=1e-4)
    gpt = GPT(GPTConfig(vocab_size=20, norm="rmsnorm", mlp="swiglu", positions="rope", num_kv_heads=2, bias=False))
    assert gpt.pos_emb is None and gpt(torch.randint(20, (2, 5))).shape == (2, 5, 20)
    for bad in ({"norm": "batchnorm"}, {"mlp": "relu2"}, {"positions": "alibi"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GPTConfig(vocab_size=20, **bad)


@pytest.mark.parametrize("bad", [
    {"vocab_size": 0}, {"vocab_size": -5}, {"vocab_size": 10.5}, {"max_len": 0}, {"d_model": 0},
    {"num_heads": 0}, {"num_heads": -4}, {"num_layers": -1}, {"d_ff": 0}, {"dropout": 1.5},
    {"num_kv_heads": 0}, {"num_kv_heads": 3}, {"norm_eps": 0.0}, {"rope_base": -1.0},
    {"d_model": 30, "num_heads": 4}, {"d_model": 12, "num_heads": 4, "positions": "rope"},
])
def test_gpt_rejects_impossible_configurations(bad):
    """Each impossible value is a ValueError naming the field, from GPTConfig and from GPT(**fields)."""
    name = next(iter(bad)) if len(bad) == 1 else "num_heads" if "positions" not in bad else "even"
    fields = {"vocab_size": 10, **bad}
    with pytest.raises(ValueError, match=name):
        GPTConfig(**fields)
    with pytest.raises(ValueError, match=name):
        GPT(**fields)


def test_gpt_takes_a_config_or_its_fields():
    assert GPT(vocab_size=12, d_model=16, num_heads=2).config == GPTConfig(vocab_size=12, d_model=16, num_heads=2)
    assert GPT(vocab_size=12, num_layers=0)(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 12)  # a bigram model
    with pytest.raises(ValueError, match="not both"):
        GPT(GPTConfig(vocab_size=12), d_model=16)
    with pytest.raises(ValueError, match="GPTConfig"):
        GPT({"vocab_size": 12})


@pytest.mark.parametrize("make, name", [
    (lambda: FeedForward(8, 0), "d_ff"), (lambda: FeedForward(0, 8), "d_model"),
    (lambda: FeedForward(8, 16, dropout=-1), "dropout"), (lambda: SwiGLU(8, -16), "d_ff"),
    (lambda: RMSNorm(0), "d_model"), (lambda: RMSNorm(8, eps=-1e-6), "eps"),
    (lambda: EncoderBlock(8, 0, 16), "num_heads"), (lambda: EncoderBlock(8, 2, 16, activation="tanh"), "activation"),
    (lambda: DecoderBlock(8, -1, 16), "num_heads"), (lambda: DecoderBlock(8, 2, 0), "d_ff"),
])
def test_blocks_reject_impossible_configurations(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_next_token_probs_temperature_and_top_k():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    assert torch.allclose(next_token_probs(logits), torch.softmax(logits, -1))
    assert torch.allclose(next_token_probs(logits, temperature=0.5), torch.softmax(logits * 2, -1))
    p = next_token_probs(logits, top_k=2)
    assert torch.allclose(p, torch.tensor([[0.7311, 0.2689, 0.0, 0.0]]), atol=1e-4)
    assert torch.allclose(next_token_probs(logits, top_k=10), torch.softmax(logits, -1))
    with pytest.raises(ValueError, match="temperature must be a positive"):
        next_token_probs(logits, temperature=0)
    with pytest.raises(ValueError, match="top_k must be None or a positive int"):
        next_token_probs(logits, top_k=0)


def test_generate_greedy_sampled_and_errors():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=30, max_len=8)).eval()
    prompt = torch.randint(30, (2, 3))
    greedy = gpt.generate(prompt, 10, greedy=True)  # longer than max_len: the context is cropped
    assert greedy.shape == (2, 13) and torch.equal(greedy[:, :3], prompt)
    assert torch.equal(gpt.generate(prompt, 10, top_k=1), greedy)
    a = gpt.generate(prompt, 6, generator=torch.Generator().manual_seed(4))
    b = gpt.generate(prompt, 6, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="max_new_tokens"):
        gpt.generate(prompt, -1)
    with pytest.raises(ValueError, match="length >= 1"):
        gpt.generate(prompt[:, :0], 2)


def test_loss_floor_counts_the_choices():
    import math

    task = AssociativeRecall(n_pairs=3, n_keys=5, n_values=4, interleaved=True)
    floor = task.loss_floor()
    assert floor.shape == (task.seq_len,) and task.sequences(2).shape == (2, task.seq_len + 1)
    want = [math.log(4), math.log(4), math.log(4), math.log(3), math.log(4), 0.0, math.log(3), 0.0]
    assert torch.allclose(floor, torch.tensor(want))
    pairs = AssociativeRecall(n_pairs=3, n_keys=5, n_values=4)
    assert torch.allclose(pairs.loss_floor(), torch.tensor([math.log(16), math.log(12), math.log(3), 0.0]))


def test_train_recall_runs_and_is_seeded():
    task = AssociativeRecall(n_pairs=2, n_keys=4, n_values=3)
    m1, c1 = train_recall(task, 6, seed=3, eval_every=3, n_eval=20, d_model=16, d_ff=32)
    m2, c2 = train_recall(task, 6, seed=3, eval_every=3, n_eval=20, d_model=16, d_ff=32)
    assert [s for s, _ in c1] == [0, 3, 6] and c1 == c2
    x, y = task.sample(10, torch.Generator().manual_seed(0))
    assert answers_correct(m1, x, y).shape == (10,) and not m1.training
    with pytest.raises(ValueError, match="eval_every"):
        train_recall(task, 5, eval_every=0)
