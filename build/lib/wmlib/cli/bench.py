"""``wmlib bench kv-cache``: the KV cache's speed and size on a real model (Chapter 7).

For each context length it times greedy decoding three ways on the same prompt (a run of bAbI
stories) and checks that they choose the same tokens:

- ``cached``: :func:`wmlib.kv_cache.greedy_decode` (prefill once, then one token per step);
- ``uncached``: :func:`wmlib.kv_cache.uncached_greedy_decode` (re-reads the whole prefix per token);
- ``generate``: Hugging Face's ``model.generate`` under a neutral greedy config
  (:func:`wmlib.lm.greedy_generate`), the reference.

Times are medians over repeats after a warm-up, under ``torch.inference_mode`` with a fixed
thread count; cached and ``generate`` runs alternate so that a noisy neighbour slows both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from ._args import nonnegative_int, output_file, positive_int, write_json

ROW_KEYS = {
    "context": int, "new_tokens": int, "speedup_vs_uncached": float, "ratio_to_generate": float,
    "matches_generate": bool, "bytes_per_token_measured": float, "bytes_per_token_formula": int,
}


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_kv_cache(model_name: str = "smollm2-135m", contexts=(256, 512, 1024), new_tokens: int = 32,
                   repeats: int = 3, uncached_repeats: int = 1, threads: int | None = None, show_progress=True,
                   loaded=None):
    """Run the benchmark; return a list of rows (dicts), one per context length.

    ``loaded``: an already loaded ``(model, tokenizer)`` pair to use instead of loading ``model_name``."""
    import torch

    from ..kv_cache import CachedDecoder, babi_text, greedy_decode, uncached_greedy_decode
    from ..lm import greedy_generate
    from ..models import load_causal_lm
    from ..utils import progress

    if not contexts or any(not isinstance(c, int) or c < 1 for c in contexts):
        raise ValueError(f"contexts must be positive token counts, got {contexts!r}")
    if new_tokens < 1 or repeats < 1 or uncached_repeats < 0:
        raise ValueError("new_tokens and repeats must be >= 1 and uncached_repeats >= 0")
    if threads is not None:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    model, tok = loaded if loaded is not None else load_causal_lm(model_name)
    decoder = CachedDecoder(model)
    text_ids = tok(babi_text(), return_tensors="pt")["input_ids"]
    if text_ids.shape[1] < max(contexts):
        raise ValueError(f"the prompt text has only {text_ids.shape[1]} tokens; use contexts <= that")

    def generate(ids):
        # model.generate under a neutral config (no hub penalties); stop=False: never stop early, so
        # both produce exactly new_tokens tokens
        out, cache = greedy_generate(model, ids.tolist(), new_tokens, tokenizer=tok, stop=False, return_cache=True)
        return torch.tensor(out, device=ids.device), cache

    rows = []
    tasks = [(c, phase) for c in contexts for phase in ("warm-up", "cached vs generate", "uncached")]
    bar = progress(tasks, desc="kv-cache bench", total=len(tasks)) if show_progress else iter(tasks)
    state: dict = {}
    with torch.inference_mode():
        for context, phase in bar:
            ids = text_ids[:, :context].to(decoder.device)
            if phase == "warm-up":
                state = {"ours": greedy_decode(decoder, ids, new_tokens), "theirs": generate(ids)}
            elif phase == "cached vs generate":
                t_ours, t_theirs = [], []
                for _ in range(repeats):  # alternate, so that load from elsewhere hits both alike
                    t, _ = _timed(lambda: greedy_decode(decoder, ids, new_tokens))
                    t_ours.append(t)
                    t, _ = _timed(lambda: generate(ids))
                    t_theirs.append(t)
                state["cached_s"], state["generate_s"] = statistics.median(t_ours), statistics.median(t_theirs)
            else:
                t_unc = []
                for _ in range(uncached_repeats):
                    t, unc = _timed(lambda: uncached_greedy_decode(decoder, ids, new_tokens))
                    t_unc.append(t)
                    state["uncached_tokens"] = unc
                new, cache = state["ours"]
                hf_new, hf_cache = state["theirs"]
                hf_k = hf_cache.layers[0].keys if hasattr(hf_cache, "layers") else hf_cache[0][0]
                hf_bytes = sum(t.untyped_storage().nbytes() for layer in range(decoder.num_layers)
                               for t in _hf_layer(hf_cache, layer))
                uncached_s = statistics.median(t_unc) if t_unc else float("nan")
                rows.append({
                    "context": context,
                    "new_tokens": new_tokens,
                    "cached_s": round(state["cached_s"], 4),
                    "generate_s": round(state["generate_s"], 4),
                    "uncached_s": round(uncached_s, 4),
                    "speedup_vs_uncached": round(uncached_s / state["cached_s"], 3),
                    "ratio_to_generate": round(state["cached_s"] / state["generate_s"], 3),
                    "matches_generate": bool(torch.equal(new.cpu(), hf_new.cpu())),
                    "matches_uncached": (bool(torch.equal(new.cpu(), state["uncached_tokens"].cpu()))
                                         if "uncached_tokens" in state else None),
                    "cache_tokens": cache.length,
                    "bytes_per_token_measured": round(cache.nbytes() / cache.length, 2),
                    "bytes_per_token_generate": round(hf_bytes / hf_k.shape[2], 2),
                    "bytes_per_token_formula": decoder.bytes_per_token(),
                    "threads": threads,
                    "load_average_1min": round(os.getloadavg()[0], 2),
                })
    return rows


def _hf_layer(hf_cache, layer: int):
    """The key and value tensors of one layer of a Hugging Face cache (old tuple or new Cache API)."""
    if hasattr(hf_cache, "layers"):
        return hf_cache.layers[layer].keys, hf_cache.layers[layer].values
    return hf_cache[layer][0], hf_cache[layer][1]


def format_table(rows) -> str:
    head = (f"{'context':>7} {'cached s':>9} {'generate s':>10} {'uncached s':>10} {'speedup':>8} "
            f"{'÷ generate':>10} {'same tokens':>11} {'B/token':>9} {'formula':>8}")
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['context']:>7} {r['cached_s']:>9.2f} {r['generate_s']:>10.2f} {r['uncached_s']:>10.2f} "
            f"{r['speedup_vs_uncached']:>7.1f}× {r['ratio_to_generate']:>9.2f}× "
            f"{'yes' if r['matches_generate'] else 'NO':>11} {r['bytes_per_token_measured']:>9.0f} "
            f"{r['bytes_per_token_formula']:>8}")
    if rows:
        r = rows[0]
        lines.append(f"({r['new_tokens']} new greedy tokens; medians; {r['threads']} threads; "
                     f"1-min load average at the end: {rows[-1]['load_average_1min']})")
    return "\n".join(lines)


def run(args) -> int:
    from ..utils import progress_enabled

    if args.quick:
        args.contexts, args.new_tokens, args.repeats = [64], 4, 1
    rows = bench_kv_cache(args.model, tuple(args.contexts), args.new_tokens, args.repeats,
                          args.uncached_repeats, args.threads, show_progress=progress_enabled())
    print(format_table(rows))
    if args.json:
        write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 0


def _bench_subparsers(sub):
    """The ``bench`` command's own subcommands (created here, or shared with another module)."""
    parser = sub.choices.get("bench")
    if parser is None:
        parser = sub.add_parser("bench", help="benchmarks that print figures (and write JSON)")
        parser.set_defaults(func=lambda args: parser.print_help())
        return parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the 'bench' command exists but has no subcommands")


def register(sub) -> None:
    bench = _bench_subparsers(sub)
    p = bench.add_parser(
        "kv-cache", help="decoding with and without a KV cache vs model.generate (Chapter 7)",
        description="Time greedy decoding with wmlib's KV cache, without a cache, and with Hugging Face's "
                    "model.generate, after prompts of several lengths; check that all three choose the same "
                    "tokens; compare the cache's bytes per token with the formula. Prints a table; --json "
                    "also writes the rows.")
    p.add_argument("--json", type=output_file, metavar="FILE", help="also write the rows as a JSON list to FILE")
    p.add_argument("--model", default="smollm2-135m", help="a packaged model name, local folder or hub id (default: smollm2-135m)")
    p.add_argument("--contexts", type=positive_int, nargs="+", default=[256, 512, 1024], metavar="N",
                   help="prompt lengths in tokens (default: 256 512 1024)")
    p.add_argument("--new-tokens", type=positive_int, default=32, help="greedy tokens to generate (default: 32)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs of cached and generate (default: 3)")
    p.add_argument("--uncached-repeats", type=nonnegative_int, default=1,
                   help="timed runs of the slow uncached decoding (default: 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test in seconds: --contexts 64 --new-tokens 4 --repeats 1")
    p.set_defaults(func=run)

