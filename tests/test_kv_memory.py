"""wmlib.kv_memory: KV-cache bytes per token, from the config and measured."""

import pytest
import torch

from wmlib.kv_memory import allocated_bytes, cache_tensors, kv_cache_bytes_per_token, kv_shape_from_config, measure_kv_cache

SMOLLM2_135M = {"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "hidden_size": 576, "head_dim": 64}


def tiny_llama(kv_heads=2, heads=4, layers=3, hidden=32):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_formula_for_smollm2():
    # 2 (K, V) x 30 layers x 3 KV heads x 64 dims x 4 bytes
    assert kv_cache_bytes_per_token(SMOLLM2_135M) == 2 * 30 * 3 * 64 * 4 == 46_080
    assert kv_cache_bytes_per_token(SMOLLM2_135M, torch.bfloat16) == 23_040
    assert kv_cache_bytes_per_token(SMOLLM2_135M, "float16") == 23_040


def test_defaults_follow_multi_head_attention():
    config = {"num_hidden_layers": 2, "num_attention_heads": 8, "hidden_size": 256}
    assert kv_shape_from_config(config) == (2, 8, 32)
    assert kv_cache_bytes_per_token(config) == 2 * 2 * 8 * 32 * 4


def test_grouped_query_attention_shrinks_the_cache():
    mha = dict(SMOLLM2_135M, num_key_value_heads=9)
    mqa = dict(SMOLLM2_135M, num_key_value_heads=1)
    gqa = kv_cache_bytes_per_token(SMOLLM2_135M)
    assert kv_cache_bytes_per_token(mha) == 3 * gqa and kv_cache_bytes_per_token(mqa) * 3 == gqa


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_measured_cache_equals_formula(kv_heads):
    model = tiny_llama(kv_heads=kv_heads)
    ids = torch.randint(50, (2, 7), generator=torch.Generator().manual_seed(0))
    m = measure_kv_cache(model, ids)
    assert m.layers == 3 and m.key_shape == (2, kv_heads, 7, 8) and m.dtype == torch.float32
    assert m.total_bytes == 2 * 7 * kv_cache_bytes_per_token(model.config)
    assert m.bytes_per_token == kv_cache_bytes_per_token(model.config)


def test_cache_tensors_reads_legacy_tuples():
    k = torch.zeros(1, 2, 3, 4)
    assert len(cache_tensors(((k, k), (k, k)))) == 2
    with pytest.raises(ValueError, match="use_cache=True"):
        cache_tensors(None)
    with pytest.raises(TypeError, match="cache of type"):
        cache_tensors(42)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="num_hidden_layers"):
        kv_cache_bytes_per_token({"num_attention_heads": 4, "hidden_size": 8})
    with pytest.raises(ValueError, match="not a multiple"):
        kv_cache_bytes_per_token(dict(SMOLLM2_135M, num_key_value_heads=4))
    with pytest.raises(ValueError, match="unknown dtype name"):
        kv_cache_bytes_per_token(SMOLLM2_135M, "float13")
    with pytest.raises(TypeError, match="dtype"):
        kv_cache_bytes_per_token(SMOLLM2_135M, 4)
    model = tiny_llama()
    with pytest.raises(ValueError, match=r"shape \(batch, tokens\)"):
        measure_kv_cache(model, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        measure_kv_cache(model, torch.zeros(1, 5))
    with pytest.raises(ValueError, match="no tokens"):
        measure_kv_cache(model, torch.zeros(1, 0, dtype=torch.long))


def test_cli_prints_formula_and_measurement(capsys):
    from wmlib.cli import main

    assert main(["kv-cache", "--context", "1000", "--measure", "16"]) == 0
    out = capsys.readouterr().out
    assert "46,080 bytes per token" in out and "ratio to the formula 1.000" in out
    assert main(["kv-cache", "--dtype", "bfloat16", "--context", "1000"]) == 0
    assert "23,040 bytes per token" in capsys.readouterr().out
    assert main(["kv-cache", "--dtype", "float13"]) != 0


def test_allocated_bytes_counts_memory_blocks_not_shapes():
    buf = torch.zeros(1, 2, 10, 4)  # one block of 10 positions; the cache shows 3 of them
    k, v = buf[:, :, :3], torch.zeros(1, 2, 3, 4)
    assert allocated_bytes(((k, v),)) == buf.nbytes + v.nbytes  # the view counts its whole block
    assert allocated_bytes(((k, k), (k, v))) == buf.nbytes + v.nbytes  # a shared block counts once
    with pytest.raises(ValueError, match="use_cache=True"):
        allocated_bytes(None)


def test_dynamic_cache_holds_exactly_what_it_read_and_a_static_one_allocates_ahead():
    from transformers import StaticCache

    model = tiny_llama(kv_heads=2)
    ids = torch.randint(50, (1, 7), generator=torch.Generator().manual_seed(0))
    per_token = kv_cache_bytes_per_token(model.config)
    dynamic = measure_kv_cache(model, ids)
    assert dynamic.allocated_bytes == dynamic.total_bytes == 7 * per_token
    static = measure_kv_cache(model, ids, cache=StaticCache(config=model.config, max_cache_len=20))
    assert static.allocated_bytes == 20 * per_token
    with pytest.raises(TypeError, match="transformers Cache"):
        measure_kv_cache(model, ids, cache=[])
