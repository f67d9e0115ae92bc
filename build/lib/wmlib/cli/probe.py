"""``wmlib probe``: run one working-memory probe on a model and write its scores as JSON.

    wmlib probe needle --model smollm2-135m --quick --json needle.json
    wmlib probe lost-in-the-middle --model Qwen/Qwen2.5-1.5B-Instruct --device cuda --json litm.json

The JSON file holds ``{"probe", "model", "scores", ...}`` with every score in [0, 1] (nested
dicts, e.g. ``{"512": {"0.5": 1.0}}`` = context length -> depth -> accuracy), plus the
summary, settings, chance levels, run time and a few example prompts.
"""

from __future__ import annotations

import json
import time

from ._args import nonnegative_int, output_file, positive_int, write_json


# what the rows of each probe's table are (the columns are named in the header)
_ROW_LABELS = {"needle": "length/depth", "lost-in-the-middle": "pairs/position", "n-back": "n", "digit-span": ""}


def run(args) -> int:
    from ..probes import ProbeLM, format_scores, run_probe

    start = time.perf_counter()
    try:
        overrides = json.loads(args.set) if args.set else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--set takes a JSON object of settings, e.g. '{{\"trials\": 2}}'; cannot read {args.set!r}: {err.msg}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--set takes a JSON object of settings, e.g. '{{\"trials\": 2}}'; got {args.set!r}")
    lm = ProbeLM.load(args.model, device=args.device, max_context=args.max_context,
                      **({"batch_tokens": args.batch_tokens} if args.batch_tokens else {}))
    result = run_probe(args.name, model=lm, quick=args.quick, seed=args.seed, **overrides)
    total = time.perf_counter() - start
    out = result.to_dict()
    out["seconds_total"] = total  # model loading included
    if args.json:
        write_json(args.json, out)
    print(f"{result.probe} on {result.model} ({'quick' if args.quick else 'full'} settings, seed {args.seed}, "
          f"device {lm.device}, chat template {'on' if lm.use_chat_template else 'off'})")
    print(format_scores(result.scores, _ROW_LABELS.get(result.probe, "")))
    headline = {k: v for k, v in result.summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if headline:
        print("summary: " + ", ".join(f"{k} {v:.3g}" for k, v in headline.items()))
    print(f"time: {result.seconds:.1f} s probing, {total:.1f} s in all" + (f"; wrote {args.json}" if args.json else ""))
    return 0


# The probes' names, listed here so that `wmlib --help` need not import torch (a test checks that
# they equal wmlib.probes.PROBES).
PROBE_NAMES = ["needle", "lost-in-the-middle", "n-back", "digit-span"]


def register(sub) -> None:
    p = sub.add_parser("probe", help="run a working-memory probe (needle, lost-in-the-middle, n-back, digit-span)",
                       description="Run one working-memory probe on a model, print a table of its scores "
                                   "(all in [0, 1]) and write them, with settings and examples, as JSON.")
    p.add_argument("name", choices=PROBE_NAMES, help="which probe")
    p.add_argument("--model", default="smollm2-135m", help="a packaged model name or a Hugging Face hub id")
    p.add_argument("--quick", action="store_true", help="small settings (under two minutes per probe on a laptop CPU)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the random trials (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--max-context", type=positive_int, default=None,
                   help="refuse prompts longer than this many tokens (default: the model's limit)")
    p.add_argument("--batch-tokens", type=positive_int, default=None, help="tokens per forward pass, padding included")
    p.add_argument("--set", default=None, metavar="JSON",
                   help="override settings, e.g. '{\"context_lengths\": [4096], \"trials\": 2}'")
    p.add_argument("--json", type=output_file, metavar="FILE", help="write the result to FILE as JSON")
    p.set_defaults(func=run)

