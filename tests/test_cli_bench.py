"""``wmlib bench kv-cache``: runs small, writes well-formed JSON, explains bad arguments."""

import json

import pytest

from wmlib.cli import build_parser, main
from wmlib.cli.bench import ROW_KEYS


def test_bench_kv_cache_small_run_writes_json(tmp_path, capsys):
    out = tmp_path / "kv.json"
    assert main(["bench", "kv-cache", "--contexts", "32", "64", "--new-tokens", "4", "--repeats", "1",
                 "--json", str(out)]) == 0
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
        assert r["bytes_per_token_formula"] == 46080
        assert abs(r["bytes_per_token_measured"] / r["bytes_per_token_formula"] - 1) < 0.05
        assert abs(r["bytes_per_token_generate"] / r["bytes_per_token_formula"] - 1) < 0.05


def test_bench_quick_option(capsys):
    assert main(["bench", "kv-cache", "--quick"]) == 0
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
