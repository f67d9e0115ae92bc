"""``wmlib bench kv-cache``: the KV cache's speed and size on a real model (Chapter 7).

For each context length it times greedy decoding three ways on the same prompt (a run of bAbI
stories) and checks that they choose the same tokens:

- ``cached``: :func:`wmlib.kv_cache.greedy_decode` (prefill once, then one token per step);
- ``uncached``: :func:`wmlib.kv_cache.uncached_greedy_decode` (re-reads the whole prefix per token);
- ``generate``: Hugging Face's ``model.generate`` under a neutral greedy config
  (:func:`wmlib.lm.greedy_generate`), the reference.

Times are medians over repeats after a warm-up, under ``torch.inference_mode`` with a fixed
thread count, taken with :func:`wmlib.utils.time_call` (which synchronises a GPU around each run);
cached and ``generate`` runs alternate so that a noisy neighbour slows both alike. Any model family
that :class:`wmlib.kv_cache.CachedDecoder` supports works, from a packaged name, a hub id or a local
folder (``--model PATH``), in float32 or, with ``--dtype``, bfloat16 or float16.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from ._args import dtype_name, nonnegative_int, output_file, positive_int, write_json

ROW_KEYS = {
    "context": int, "new_tokens": int, "speedup_vs_uncached": float, "speedup_vs_uncached_cpu": float,
    "ratio_to_generate": float,
    "matches_generate": bool, "bytes_per_token_measured": float, "bytes_per_token_formula": int,
}


def bench_kv_cache(model_name: str = "smollm2-135m", contexts=(256, 512, 1024), new_tokens: int = 32,
                   repeats: int = 3, uncached_repeats: int = 1, threads: int | None = None, show_progress=True,
                   loaded=None, dtype: str = "float32"):
    """Run the benchmark; return a list of rows (dicts), one per context length.

    ``loaded``: an already loaded ``(model, tokenizer)`` pair to use instead of loading ``model_name``
    (in ``dtype``)."""
    import torch

    from ..kv_cache import CachedDecoder, babi_text, greedy_decode, uncached_greedy_decode
    from ..lm import greedy_generate
    from ..models import load_causal_lm
    from ..utils import progress, time_call

    if not contexts or any(not isinstance(c, int) or c < 1 for c in contexts):
        raise ValueError(f"contexts must be positive token counts, got {contexts!r}")
    if new_tokens < 1 or repeats < 1 or uncached_repeats < 0:
        raise ValueError("new_tokens and repeats must be >= 1 and uncached_repeats >= 0")
    if threads is not None:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    model, tok = loaded if loaded is not None else load_causal_lm(model_name, dtype=dtype)
    decoder = CachedDecoder(model)

    def _timed(fn):
        """One timed run (synchronised on a GPU): wall seconds, this process's CPU seconds, and what
        ``fn`` returned. CPU time is what other programs on a busy machine inflate far less."""
        out = {}
        cpu = time.process_time()
        seconds = time_call(lambda: out.setdefault("result", fn()), repeats=1, warmup=0, device=decoder.device)
        return seconds, time.process_time() - cpu, out["result"]

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
                t_ours, t_theirs, c_ours = [], [], []
                for _ in range(repeats):  # alternate, so that load from elsewhere hits both alike
                    t, c, _ = _timed(lambda: greedy_decode(decoder, ids, new_tokens))
                    t_ours.append(t)
                    c_ours.append(c)
                    t, _, _ = _timed(lambda: generate(ids))
                    t_theirs.append(t)
                state["cached_s"], state["generate_s"] = statistics.median(t_ours), statistics.median(t_theirs)
                state["cached_cpu_s"] = statistics.median(c_ours)
            else:
                t_unc, c_unc = [], []
                for _ in range(uncached_repeats):
                    t, c, unc = _timed(lambda: uncached_greedy_decode(decoder, ids, new_tokens))
                    t_unc.append(t)
                    c_unc.append(c)
                    state["uncached_tokens"] = unc
                new, cache = state["ours"]
                hf_new, hf_cache = state["theirs"]
                hf_k = hf_cache.layers[0].keys if hasattr(hf_cache, "layers") else hf_cache[0][0]
                hf_bytes = sum(t.untyped_storage().nbytes() for layer in range(decoder.num_layers)
                               for t in _hf_layer(hf_cache, layer))
                uncached_s = statistics.median(t_unc) if t_unc else float("nan")
                uncached_cpu_s = statistics.median(c_unc) if c_unc else float("nan")
                rows.append({
                    "context": context,
                    "new_tokens": new_tokens,
                    "cached_s": round(state["cached_s"], 4),
                    "generate_s": round(state["generate_s"], 4),
                    "uncached_s": round(uncached_s, 4),
                    "speedup_vs_uncached": round(uncached_s / state["cached_s"], 3),
                    "cached_cpu_s": round(state["cached_cpu_s"], 4),
                    "uncached_cpu_s": round(uncached_cpu_s, 4),
                    "speedup_vs_uncached_cpu": round(uncached_cpu_s / max(state["cached_cpu_s"], 1e-9), 3),
                    "ratio_to_generate": round(state["cached_s"] / state["generate_s"], 3),
                    "matches_generate": bool(torch.equal(new.cpu(), hf_new.cpu())),
                    "matches_uncached": (bool(torch.equal(new.cpu(), state["uncached_tokens"].cpu()))
                                         if "uncached_tokens" in state else None),
                    "cache_tokens": cache.length,
                    "bytes_per_token_measured": round(cache.nbytes() / cache.length, 2),
                    "bytes_per_token_generate": round(hf_bytes / hf_k.shape[2], 2),
                    "bytes_per_token_formula": decoder.bytes_per_token(),
                    "dtype": str(decoder.dtype).removeprefix("torch."),
                    "device": str(decoder.device),
                    "threads": threads,
                    "load_average_1min": round(os.getloadavg()[0], 2),
                })
    return rows


# ------------------------------------------------------------------------ streaming past the context
STREAMING_DEFAULTS = {"model": "smollm2-135m", "dtype": "float32", "budget": 256, "sinks": 4, "past": 2048,
                      "window": 512, "block": 64, "text": "sst2/dev"}


def bench_streaming(model: str = "smollm2-135m", dtype: str = "float32", budget: int = 256, sinks: int = 4,
                    past: int = 2048, window: int = 512, block: int = 64, text: str = "sst2/dev",
                    show_progress: bool = True, context: int | None = None) -> dict:
    """Stream a long text past the model's context under StreamingLLM (sinks, positions renumbered
    within the cache), under the same sinks with original positions, and with the full cache.

    Reads ``context + past`` tokens of ``text`` (the SST-2 development sentences, one after the
    other), one token at a time under the two sink policies (``budget`` tokens, ``sinks`` of them
    sinks). ``context``: the trained context to stream past (default: the model's own, which is what
    the recorded run uses; tests pass a short one). Returns a JSON-ready dict: the configuration, per policy the perplexity of every
    ``window`` tokens with a bootstrap interval over blocks of ``block`` tokens, the perplexity past
    the trained context, a verdict sentence and the CPU seconds it took.
    """
    import math
    import time

    import torch

    from .. import stats
    from ..data import load_sst2
    from ..kv_cache import AttentionSinks, CachedDecoder, PerRow, stream_under_budget
    from ..lm import context_limit
    from ..models import load_causal_lm

    if text != "sst2/dev":
        raise ValueError(f"text must be 'sst2/dev' (the only long natural text available offline), got {text!r}")
    if not 0 < sinks < budget or window % block or past < window:
        raise ValueError("need 0 < sinks < budget, window a multiple of block, and past >= window")
    cpu0 = time.process_time()
    lm, tok = load_causal_lm(model, dtype=dtype)
    decoder = CachedDecoder(lm)
    context = context or context_limit(lm)
    if context is None:
        raise ValueError(f"{model} does not say how long a context it was built for")
    n = context + past
    ids = tok(" ".join(load_sst2("dev").texts), return_tensors="pt")["input_ids"][:, :n]
    if ids.shape[1] < n:
        raise ValueError(f"the text has only {ids.shape[1]:,} tokens; {n:,} are needed (context {context:,} + {past:,})")
    names = ["StreamingLLM", "sinks, original positions"]
    both = PerRow([AttentionSinks(budget, sinks, positions="cache"), AttentionSinks(budget, sinks)], rows_each=1)
    streamed = stream_under_budget(decoder, ids, both, desc="streaming" if show_progress else None)
    full = stream_under_budget(decoder, ids, None)
    nll = {names[0]: streamed.nll[0], names[1]: streamed.nll[1], "full cache": full.nll[0]}  # nll[t]: token t + 1

    def blocks(x):  # mean loss of consecutive blocks of `block` tokens
        x = x[: len(x) // block * block]
        return x.view(-1, block).mean(1).tolist()

    def perplexity(x) -> list:
        e = stats.bootstrap_mean(blocks(x))
        return [math.exp(e.value), math.exp(e.low), math.exp(e.high), e.n, "bootstrap over blocks"]

    ends = list(range(window, n + 1, window))
    curves = {name: {"end": ends, "ppl": [perplexity(x[end - window:end]) for end in ends]} for name, x in nll.items()}
    after = {name: perplexity(x[context:]) for name, x in nll.items()}
    diff = stats.paired_difference(blocks(nll[names[0]][context:]), blocks(nll[names[1]][context:]))
    verdict = stats.compare(diff, "past the trained context, the loss under StreamingLLM",
                            "that with the sinks at their original positions", fmt="{:+.3f}") + "."
    return {"config": {"model": model, "dtype": dtype, "budget": budget, "sinks": sinks, "past": past,
                       "window": window, "block": block, "text": text, "context": context, "tokens": n},
            "curves": curves, "after_context": after, "verdict": verdict[0].upper() + verdict[1:],
            "cpu_seconds": round(time.process_time() - cpu0, 1),
            "command": f"wmlib bench streaming --model {model} --dtype {dtype} --budget {budget} --sinks {sinks} "
                       f"--past {past} --window {window} --block {block}"}


def run_streaming(args) -> int:
    from ..utils import progress_enabled

    out = bench_streaming(args.model, args.dtype, args.budget, args.sinks, args.past, args.window, args.block,
                          show_progress=progress_enabled())
    for name, e in out["after_context"].items():
        print(f"{name:28s} perplexity past the trained context: {e[0]:.2f} ({e[1]:.2f}-{e[2]:.2f})")
    print(out["verdict"])
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0


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
        lines.append(f"({r['new_tokens']} new greedy tokens; medians; {r['dtype']} on {r['device']}; {r['threads']} threads; "
                     f"1-min load average at the end: {rows[-1]['load_average_1min']})")
    return "\n".join(lines)


def run(args) -> int:
    from ..utils import progress_enabled

    if args.quick:
        args.contexts, args.new_tokens, args.repeats = [64], 4, 1
    rows = bench_kv_cache(args.model, tuple(args.contexts), args.new_tokens, args.repeats,
                          args.uncached_repeats, args.threads, show_progress=progress_enabled(), dtype=args.dtype)
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
    p.add_argument("--dtype", type=dtype_name, default="float32",
                   help="the model's and cache's element type: float32, bfloat16 or float16 (default: %(default)s)")
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

    d = STREAMING_DEFAULTS
    s = bench.add_parser(
        "streaming", help="stream past the trained context: StreamingLLM vs sinks at original positions (Chapter 7)",
        description="Read the SST-2 development sentences token by token past the model's trained context, with a "
                    "cache of --budget tokens under StreamingLLM (sinks, positions renumbered within the cache) and "
                    "under the same sinks at their original positions, and once with the full cache; print the "
                    "perplexity past the context, with bootstrap intervals over blocks of tokens. --json writes it all.")
    s.add_argument("--json", type=output_file, metavar="FILE", help="also write the results as JSON to FILE")
    s.add_argument("--model", default=d["model"], help="a packaged model name, local folder or hub id (default: %(default)s)")
    s.add_argument("--dtype", type=dtype_name, default=d["dtype"], help="float32, bfloat16 or float16 (default: %(default)s)")
    s.add_argument("--budget", type=positive_int, default=d["budget"], help="cache budget in tokens (default: %(default)s)")
    s.add_argument("--sinks", type=positive_int, default=d["sinks"], help="sink tokens kept (default: %(default)s)")
    s.add_argument("--past", type=positive_int, default=d["past"],
                   help="tokens read past the trained context (default: %(default)s)")
    s.add_argument("--window", type=positive_int, default=d["window"],
                   help="tokens per perplexity point (default: %(default)s)")
    s.add_argument("--block", type=positive_int, default=d["block"],
                   help="tokens per bootstrap block (default: %(default)s)")
    s.set_defaults(func=run_streaming)

