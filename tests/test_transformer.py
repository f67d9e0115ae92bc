"""wmlib.transformer and wmlib.synthetic."""

import pytest
import torch
from torch import nn

from wmlib.synthetic import AssociativeRecall
from wmlib.transformer import GPT, DecoderBlock, EncoderBlock, GPTConfig


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
    with pytest.raises(ValueError, match="outside the vocabulary"):
        AssociativeRecall().token_str(10_000)
