"""``wmlib copy-task``: Chapter 9's recorded comparison of a Neural Turing Machine and an LSTM.

Each seed trains both models on copies of lengths 1 to 20 until they fit them (or their step
budget runs out), then tests them on the same sequences of every length up to 120. The defaults
are the book's recorded configuration, ``wmlib.copy_task.CopyExperiment()``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import replace

from ._args import output_file, positive_int, write_json


def seed_list(text: str) -> list[int]:
    """'0-4' or '0,2,5' -> a list of distinct non-negative seeds."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-"))
                if lo > hi:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seeds such as 0-4 or 0,2,5, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative seeds such as 0-4, got {text!r}")
    return sorted(set(seeds))


def model_list(text: str) -> list[str]:
    kinds = [k.strip() for k in str(text).split(",") if k.strip()]
    if not kinds or any(k not in ("ntm", "lstm") for k in kinds):
        raise argparse.ArgumentTypeError(f"choose ntm, lstm or ntm,lstm, got {text!r}")
    return list(dict.fromkeys(kinds))


def run(args) -> int:
    import torch

    from ..copy_task import CopyExperiment, run_copy_experiment, training_error

    exp = CopyExperiment()
    if args.n_eval is not None:
        exp = replace(exp, n_eval=args.n_eval)
    if args.ntm_steps is not None:
        exp = replace(exp, ntm=replace(exp.ntm, steps=args.ntm_steps))
    if args.lstm_steps is not None:
        exp = replace(exp, lstm=replace(exp.lstm, steps=args.lstm_steps))
    print(f"copy task: {', '.join(args.models)} x seeds {args.seeds}, lengths 1-{exp.train_max}, tested at "
          f"{', '.join(map(str, exp.lengths))}; {args.workers} worker(s) of one thread", flush=True)
    states = {}

    def report(result, state):
        err = training_error(result, exp)
        print(f"  {result['kind']:4s} seed {result['seed']}: {result['steps']} steps, {result['cpu_seconds']:.0f} s CPU, "
              f"{err:.2%} of the training-length bits wrong ({'fits' if err < exp.fit_below else 'does not fit'}), "
              f"at length {max(exp.lengths)}: {sum(result['errors'][str(max(exp.lengths))]) / (exp.bits * max(exp.lengths) * exp.n_eval):.2%}",
              flush=True)
        if result["kind"] == "ntm":
            states[result["seed"]] = (err, state)

    out = run_copy_experiment(args.seeds, args.models, exp, args.workers, report)
    out["command"] = "wmlib " + " ".join(sys.argv[1:]) if "copy-task" in sys.argv else "wmlib copy-task"
    out["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}
    if args.weights:
        fitted = sorted(seed for seed, (err, _) in states.items() if err < exp.fit_below)
        if not fitted:
            print("no NTM seed fits its training lengths: no weights written", file=sys.stderr)
        else:
            args.weights.parent.mkdir(parents=True, exist_ok=True)
            torch.save(states[fitted[0]][1], args.weights)
            out["weights"] = {"file": args.weights.name, "seed": fitted[0]}
            print(f"wrote the weights of NTM seed {fitted[0]} (the first that fits) to {args.weights}")
    if args.json:
        write_json(args.json, out, indent=1)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    from ..copy_task import CopyExperiment

    d = CopyExperiment()
    p = sub.add_parser("copy-task", help="train NTMs and LSTMs on the copy task, several seeds (Chapter 9)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=seed_list, default=seed_list("0-4"), help="seeds, e.g. 0-4 or 0,2 (default 0-4)")
    p.add_argument("--models", type=model_list, default=["ntm", "lstm"], help="ntm, lstm or ntm,lstm (default both)")
    p.add_argument("--workers", type=positive_int, default=1, help="runs in parallel processes (default 1)")
    p.add_argument("--json", type=output_file, metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--weights", type=output_file, metavar="FILE",
                   help="save the weights of the first NTM seed that fits its training lengths (a .pt file)")
    p.add_argument("--ntm-steps", type=positive_int, help=f"the NTM's step budget (default {d.ntm.steps})")
    p.add_argument("--lstm-steps", type=positive_int, help=f"the LSTM's step budget (default {d.lstm.steps})")
    p.add_argument("--n-eval", type=positive_int, help=f"test sequences per length (default {d.n_eval})")
    p.set_defaults(func=run)
