"""``wmlib recall``: train small GPTs on associative recall, several seeds, and write their curves (Chapter 5).

Each seed trains its own 2-layer GPT as a language model (next-token loss at every position) with
:func:`wmlib.synthetic.train_recall`, then answers the same held-out test sequences
(:func:`wmlib.synthetic.recall_test_set`); the JSON holds every seed's learning curve, its score
on each test item (``test_items``, "1" = right), the task, the training settings and the machine.
Chapter 5 reads ``wmlib/results/ch05_recall_long.json``, written by this command with ten times the
chapter's steps.
"""

from __future__ import annotations

import os
import platform
import sys
import time

from ._args import nonnegative_int, output_file, positive_float, positive_int, write_json

def run_recall(n_pairs: int, interleaved: bool, steps: int, seeds: list[int], n_test: int = 2000,
               eval_every: int = 100, threads: int = 1, **train) -> dict:
    """Train one model per seed and score it on the shared test sequences; JSON-ready results."""
    import torch

    from ..synthetic import RECALL_GPT, RECALL_TEST_SEED, AssociativeRecall, train_recall_seeds

    task = AssociativeRecall(n_pairs=n_pairs, interleaved=interleaved)
    start, load_before = time.perf_counter(), _load()
    runs = train_recall_seeds(task, steps, seeds, n_test, log=lambda m: print(m, flush=True),
                              eval_every=eval_every, threads=threads, **train)
    rows = [{"seed": r["seed"], "test_correct": int(r["correct"].sum()), "n_test": n_test,
             "curve_steps": [s for s, _ in r["curve"]], "curve_accuracy": [round(a, 4) for _, a in r["curve"]],
             "cpu_seconds": round(r["cpu_seconds"], 1),
             "test_items": "".join("1" if c else "0" for c in r["correct"].tolist())} for r in runs]
    return {
        "task": {"n_pairs": task.n_pairs, "n_keys": task.n_keys, "n_values": task.n_values,
                 "interleaved": task.interleaved, "test_seed": RECALL_TEST_SEED, "n_test": n_test},
        "training": {"steps": steps, "eval_every": eval_every, **_train_defaults(train), "model": dict(RECALL_GPT)},
        "seeds": rows,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in rows), 1),
        "machine": {"cpu_count": os.cpu_count(), "threads": threads, "load_average_before": load_before,
                    "load_average_after": _load(), "python": platform.python_version(), "torch": torch.__version__},
    }


def _train_defaults(train: dict) -> dict:
    """The keyword settings of train_recall in effect: its defaults, overridden by ``train``."""
    import inspect

    from ..synthetic import train_recall

    sig = inspect.signature(train_recall).parameters
    keys = ("batch_size", "lr", "n_eval")
    return {k: train.get(k, sig[k].default) for k in keys}


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _seeds(text: str) -> list[int]:
    import argparse

    try:
        seeds = sorted({int(s) for s in str(text).split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds, e.g. 0,1,2,3,4; got {text!r}") from None
    if not seeds or seeds[0] < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative seeds, e.g. 0,1,2,3,4; got {text!r}")
    return seeds


def run(args) -> int:
    fmt = "separate key and value tokens" if args.format == "separate" else "one token per pair"
    print(f"associative recall, {args.pairs} pairs, {fmt}: seeds {args.seeds}, {args.steps} steps each", flush=True)
    results = run_recall(args.pairs, args.format == "separate", args.steps, args.seeds, n_test=args.n_test,
                         eval_every=args.eval_every, threads=args.threads, batch_size=args.batch_size, lr=args.lr)
    results["command"] = "wmlib " + " ".join(sys.argv[1:]) if sys.argv and "recall" in sys.argv else "wmlib recall"
    print(f"wall time {results['wall_seconds']:.0f} s, CPU time {results['cpu_seconds']:.0f} s")
    if args.json:
        write_json(args.json, results, indent=1)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    import inspect

    from ..synthetic import train_recall

    d = {k: v.default for k, v in inspect.signature(train_recall).parameters.items()}
    p = sub.add_parser("recall", help="train small GPTs on associative recall over several seeds (Chapter 5)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--format", choices=["pairs", "separate"], default="separate",
                   help="one token per pair (c:7 ... c?) or separate key and value tokens (c 7 ... ? c); default separate")
    p.add_argument("--pairs", type=positive_int, default=8, help="key-value pairs per sequence (default 8)")
    p.add_argument("--steps", type=nonnegative_int, default=2000, help="training steps per seed (default 2000)")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2, 3, 4], help="comma-separated seeds (default 0,1,2,3,4)")
    p.add_argument("--batch-size", type=positive_int, default=d["batch_size"], help="sequences per step (default %(default)s)")
    p.add_argument("--lr", type=positive_float, default=d["lr"], help="AdamW learning rate (default %(default)s)")
    p.add_argument("--eval-every", type=positive_int, default=100, help="steps between points of the curve (default 100)")
    p.add_argument("--n-test", type=positive_int, default=2000, help="held-out test sequences (default 2000)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", type=output_file, metavar="FILE", help="write the results as JSON to FILE")
    p.set_defaults(func=run)
