"""``wmlib bench kv-cache``: runs small, writes well-formed JSON, explains bad arguments."""

import json

import pytest

from wmlib.cli import build_parser, main
from wmlib.cli.bench import ROW_KEYS


def test_bench_kv_cache_small_run_writes_json(tmp_path, capsys, tiny_model_dir):
    """The benchmark's plumbing on a tiny random Llama (SmolLM2's own run: Chapter 6's recorded one)."""
    from transformers import AutoConfig

    out = tmp_path / "kv.json"
    model = tiny_model_dir("llama")
    assert main(["bench", "kv-cache", "--model", str(model), "--contexts", "32", "64", "--new-tokens", "4",
                 "--repeats", "1", "--json", str(out)]) == 0
    cfg = AutoConfig.from_pretrained(model)
    formula = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4
    printed = capsys.readouterr().out
    assert "speedup" in printed and f"wrote {out}" in printed
    rows = json.loads(out.read_text())
    assert [r["context"] for r in rows] == [32, 64]
    for r in rows:
        for key, typ in ROW_KEYS.items():
            assert type(r[key]) is typ, (key, r[key])  # exact: an int is not a bool, a bool not an int
        assert r["matches_generate"] is True and r["matches_uncached"] is True
        assert r["new_tokens"] == 4
        assert r["speedup_vs_uncached"] > 0 and r["ratio_to_generate"] > 0
        # the cache holds exactly prompt + new - 1 tokens, so the measured size is the formula's
        assert r["bytes_per_token_formula"] == formula  # K and V, every layer, float32
        assert abs(r["bytes_per_token_measured"] / r["bytes_per_token_formula"] - 1) < 0.05
        assert abs(r["bytes_per_token_generate"] / r["bytes_per_token_formula"] - 1) < 0.05


def test_bench_quick_option(capsys, tiny_model_dir):
    assert main(["bench", "kv-cache", "--quick", "--model", str(tiny_model_dir("llama"))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "64" and lines[1].split()[6] == "yes" and "4 new greedy tokens" in lines[2]


def test_bench_help_lists_kv_cache(capsys):
    assert main(["bench", "--help"]) == 0
    assert "kv-cache" in capsys.readouterr().out
    assert main(["bench"]) == 0  # no benchmark named: print the help, do not fail
    assert "kv-cache" in capsys.readouterr().out


def test_bench_bad_arguments_are_explained(capsys):
    assert main(["bench", "kv-cache", "--contexts", "0", "--new-tokens", "2"]) == 2
    assert "--contexts: must be at least 1" in capsys.readouterr().err
    assert main(["bench", "kv-cache", "--contexts", "100000", "--new-tokens", "2"]) == 2
    assert "has only" in capsys.readouterr().err


def test_bench_command_can_be_shared():
    """Another module may register its own `bench` subcommands: ours join them instead of clashing."""
    import argparse

    from wmlib.cli import bench as cli_bench

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    other = sub.add_parser("bench").add_subparsers(dest="benchmark")
    other.add_parser("something-else")
    cli_bench.register(sub)
    args = parser.parse_args(["bench", "kv-cache", "--contexts", "8"])
    assert args.contexts == [8] and args.func is cli_bench.run
    assert build_parser().parse_args(["bench", "kv-cache"]).new_tokens == 32


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "gpt_neox"])
def test_bench_runs_on_a_local_folder_of_every_family(family, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "kv.json"
    dtype = "bfloat16" if family == "qwen3" else "float32"
    assert main(["bench", "kv-cache", "--model", str(tiny_model_dir(family)), "--contexts", "40", "--new-tokens", "6",
                 "--repeats", "1", "--dtype", dtype, "--json", str(out)]) == 0
    row = json.loads(out.read_text())[0]
    assert row["matches_uncached"] is True and row["dtype"] == dtype
    assert row["bytes_per_token_measured"] == row["bytes_per_token_formula"]
    if dtype == "float32":  # in bfloat16 a near-tie may be broken differently by another kernel
        assert row["matches_generate"] is True
    capsys.readouterr()
    assert main(["induction", "--model", str(tiny_model_dir(family)), "--sequences", "2", "--length", "6",
                 "--device", "cpu"]) == 0
    assert "second copy" in capsys.readouterr().out


def test_streaming_bench_past_a_short_context(tiny_model_dir, tmp_path):
    from wmlib.cli.bench import STREAMING_DEFAULTS, bench_streaming

    out = bench_streaming(str(tiny_model_dir("llama")), budget=16, sinks=2, past=64, window=32, block=8,
                          show_progress=False, context=64)
    assert out["config"]["tokens"] == 128 and out["config"]["context"] == 64
    assert set(out["after_context"]) == {"StreamingLLM", "sinks, original positions", "full cache"}
    for value, low, high, n, _ in out["after_context"].values():
        assert low <= value <= high and n == 63 // 8
    assert all(len(c["end"]) == 4 == len(c["ppl"]) for c in out["curves"].values())
    assert out["verdict"][0].isupper() and out["command"].startswith("wmlib bench streaming")
    assert set(STREAMING_DEFAULTS) <= set(out["config"])


@pytest.mark.parametrize("kwargs, message", [({"sinks": 0}, "sinks"), ({"window": 30}, "window"),
                                             ({"text": "babi"}, "sst2/dev"), ({"past": 16}, "past")])
def test_streaming_bench_bad_arguments(kwargs, message, tmp_path):
    from wmlib.cli.bench import bench_streaming

    with pytest.raises(ValueError, match=message):
        bench_streaming("no-such-model", **{"budget": 16, "sinks": 2, "past": 64, "window": 32, "block": 8, **kwargs})
