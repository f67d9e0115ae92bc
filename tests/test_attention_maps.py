"""wmlib.attention_maps: the weights a pretrained model really uses, read out correctly."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from wmlib.attention_maps import attention_maps, eager_attention, model_attentions, sink_fraction, value_norms
from wmlib.models import load_encoder


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm-l6")


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_minilm_maps_of_the_books_sentence(minilm):
    model, tok = minilm
    maps = attention_maps(model, tok, "I love dogs. Do you?")
    assert maps.tokens[0] == ["[CLS]", "i", "love", "dogs", ".", "do", "you", "?", "[SEP]"]
    assert maps.weights.shape == (1, 6, 12, 9, 9) and maps.weights.dtype == torch.float32
    assert torch.allclose(maps.weights.sum(-1), torch.ones(1, 6, 12, 9), atol=1e-5)


def test_padding_changes_nothing(minilm):
    """A short text padded in a batch gets the same weights as alone, and none on the padding."""
    model, tok = minilm
    alone = attention_maps(model, tok, "Do you?")
    batch = attention_maps(model, tok, ["Do you?", "I love dogs, and dogs love me. Do you?"])
    assert batch.real_tokens(0) == alone.tokens[0]
    assert torch.allclose(batch.real_weights(0), alone.weights[0], atol=1e-5)
    pad = ~batch.attention_mask[0].bool()
    assert pad.any() and batch.weights[0][..., pad].abs().max() < 1e-6


def test_eager_switch_is_temporary(minilm):
    model, tok = minilm
    before = model.config._attn_implementation
    with eager_attention(model):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == before


def test_decoder_weights_are_causal_and_eager_equals_fused(tiny_llama):
    ids = torch.randint(64, (2, 10), generator=torch.Generator().manual_seed(1))
    w = model_attentions(tiny_llama, ids)
    assert w.shape == (2, 2, 4, 10, 10)
    assert torch.all(w.triu(1) == 0) and torch.allclose(w.sum(-1), torch.ones(2, 2, 4, 10), atol=1e-5)
    with torch.no_grad():
        fused = tiny_llama(ids).logits
        with eager_attention(tiny_llama):
            eager = tiny_llama(ids).logits
    assert torch.allclose(fused, eager, atol=1e-5), "reading the weights must not change the model's function"


def test_sink_fraction_by_hand():
    w = torch.zeros(1, 1, 2, 3, 3)
    w[0, 0, 0] = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.2, 0.6]])
    w[0, 0, 1] = torch.tensor([[0, 1.0, 0], [0, 1.0, 0], [0, 0.4, 0.6]])
    is_sink = torch.tensor([[True, False, True]])
    frac = sink_fraction(w, is_sink)
    assert frac.shape == (1, 2)
    assert torch.allclose(frac, torch.tensor([[(1 + 0.5 + 0.8) / 3, 0.6 / 3]]))
    only_first = sink_fraction(w, is_sink, query_mask=torch.tensor([[True, False, False]]))
    assert torch.allclose(only_first, torch.tensor([[1.0, 0.0]]))


def test_sink_fraction_is_one_for_all_keys(minilm):
    model, tok = minilm
    maps = attention_maps(model, tok, ["I love dogs.", "Do you love them as much as I do?"])
    frac = sink_fraction(maps.weights, maps.attention_mask.bool(), maps.attention_mask.bool())
    assert torch.allclose(frac, torch.ones(6, 12), atol=1e-5)


def test_value_norms_by_hand(minilm):
    """Recompute ||W_O^h (W_V^h x + b_V^h)|| from the hidden states the model reports."""
    model, tok = minilm
    enc = tok(["I love dogs. Do you?", "Yes."], return_tensors="pt", padding=True)
    norms = value_norms(model, enc["input_ids"], enc["attention_mask"])
    assert norms.shape == (2, 6, 12, 9)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
        layer = model.encoder.layer[3]
        v = layer.attention.self.value(hidden[3])[..., 5 * 32:6 * 32]  # head 5 of layer 3
        f = v @ layer.attention.output.dense.weight[:, 5 * 32:6 * 32].T
    assert torch.allclose(norms[:, 3, 5], f.norm(dim=-1), atol=1e-4)


def test_bad_inputs_are_named(minilm, tiny_llama):
    model, tok = minilm
    with pytest.raises(ValueError, match="non-empty"):
        attention_maps(model, tok, [])
    with pytest.raises(TypeError, match="integer"):
        model_attentions(tiny_llama, torch.rand(1, 4))
    with pytest.raises(ValueError, match=r"\(batch, length\)"):
        model_attentions(tiny_llama, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model_attentions(tiny_llama, torch.tensor([[1, 2, 3]]), torch.ones(1, 4))
    with pytest.raises(TypeError, match="PreTrainedModel"):
        model_attentions(torch.nn.Linear(2, 2), torch.tensor([[1, 2]]))
    with pytest.raises(TypeError, match="BERT-style"):
        value_norms(tiny_llama, torch.tensor([[1, 2]]))
    w = torch.rand(1, 2, 3, 4, 4)
    with pytest.raises(ValueError, match="batch, layers, heads"):
        sink_fraction(w[0], torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="is_sink"):
        sink_fraction(w, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="query_mask"):
        sink_fraction(w, torch.ones(1, 4, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="no query"):
        sink_fraction(w, torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.bool))
