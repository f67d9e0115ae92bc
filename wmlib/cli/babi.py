"""``wmlib babi``: train end-to-end memory networks on the bAbI tasks and write a results table.

Per task (the default) every task gets its own model, the best of ``--restarts`` random restarts
on its validation split; with ``--joint`` one model learns all the chosen tasks together.
Tasks run in ``--workers`` parallel processes of ``--threads`` threads each.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict, fields

from ..data import BABI_TASKS
from ._args import fraction, nonnegative_int, output_file, positive_int, write_json

# the longest tasks first, so that parallel workers finish together
_COST_ORDER = [3, 2, 5, 8, 7, 6, 14, 20, 13, 11, 12, 18, 10, 9, 19, 1, 15, 16, 17, 4]


def parse_tasks(text: str) -> list[int]:
    """'1-3,7' -> [1, 2, 3, 7]."""
    tasks = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-"))
                tasks.extend(range(lo, hi + 1))
            else:
                tasks.append(int(part))
        except ValueError:
            raise ValueError(f"--tasks: cannot read {part!r}; write e.g. 1-20 or 1,2,3") from None
    bad = [t for t in tasks if t not in BABI_TASKS]
    if bad or not tasks:
        raise ValueError(f"--tasks: bAbI tasks are numbered 1-20, got {bad or text!r}")
    return sorted(set(tasks))


def _config(args):
    from ..memn2n import TrainConfig

    joint = getattr(args, "joint", False)
    cfg = TrainConfig(
        dim=args.dim if args.dim is not None else (50 if joint else 20), hops=args.hops, encoding=args.encoding,
        temporal=not args.no_temporal, random_noise=args.random_noise, linear_start=not args.no_linear_start,
        epochs=args.epochs if args.epochs is not None else (60 if joint else 100),
        decay_every=args.decay_every if args.decay_every is not None else (15 if joint else 25),
        ls_max_epochs=args.ls_epochs if args.ls_epochs is not None else (30 if joint else 20),
        restarts=args.restarts, seed=args.seed, attend_empty=not args.mask_empty,
    )
    if cfg.epochs < 1 or cfg.restarts < 1 or cfg.hops < 1:
        raise ValueError("--epochs, --restarts and --hops must be at least 1")
    return cfg


def _worker(task, cfg_dict, size, threads):
    import torch

    from ..memn2n import TrainConfig, train_task

    torch.set_num_threads(threads)
    return train_task(task, TrainConfig(**cfg_dict), size)


def run_babi(tasks, cfg, size="1k", joint=False, workers=1, threads=1, log=print) -> dict:
    """Train and evaluate; returns the JSON-ready results."""
    import torch

    from ..memn2n import REFERENCE_ERROR, REFERENCE_ERROR_JOINT, train_joint
    from ..utils import progress

    start, load_before = time.perf_counter(), _load()
    if joint:
        torch.set_num_threads(threads)
        out = train_joint(tasks, cfg, size)
        rows = out.pop("tasks")
        extra = {"joint": out}
    elif workers <= 1:
        torch.set_num_threads(threads)
        rows = {}
        for t in progress(tasks, desc="bAbI tasks"):
            rows[t] = _worker(t, asdict(cfg), size, threads)
            log(f"  task {t:2d}: test error {rows[t]['test_error']:5.1f} %  ({rows[t]['seconds']:.0f} s)", flush=True)
        extra = {}
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        order = sorted(tasks, key=_COST_ORDER.index)
        rows = {}
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_worker, t, asdict(cfg), size, threads): t for t in order}
            for fut in progress(as_completed(futures), desc="bAbI tasks", total=len(futures)):
                r = fut.result()
                rows[r["task"]] = r
                log(f"  task {r['task']:2d}: test error {r['test_error']:5.1f} %  ({r['seconds']:.0f} s)", flush=True)
        extra = {}
    rows = {t: rows[t] for t in sorted(rows)}
    cpu = extra["joint"]["cpu_seconds"] if joint else sum(r["cpu_seconds"] for r in rows.values())
    mean = sum(r["test_error"] for r in rows.values()) / len(rows)
    ref = REFERENCE_ERROR_JOINT if joint else REFERENCE_ERROR
    return {
        "tasks": {str(t): r for t, r in rows.items()},
        "mean_test_error": round(mean, 2),
        "failed_tasks": sum(r["test_error"] > 5 for r in rows.values()),
        "reference_mean_error": round(sum(ref[t] for t in rows) / len(rows), 2),
        "mode": "joint" if joint else "per-task", "size": size, "config": asdict(cfg), **extra,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds_training": round(cpu, 1),
        "machine": {"cpu_count": os.cpu_count(), "workers": workers, "threads": threads,
                    "load_average_before": load_before, "load_average_after": _load(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def format_table(results: dict) -> str:
    joint = results["mode"] == "joint"
    ref_name = "ref. joint" if joint else "reference"
    lines = [f"{'task':>4}  {'name':24s} {'test err %':>10} {ref_name:>10}   hops: top attention on a supporting fact",
             "-" * 96]
    for t, r in results["tasks"].items():
        hops = "  ".join(f"{x:.2f}" for x in r["hop_support"])
        lines.append(f"{t:>4}  {r['name']:24s} {r['test_error']:10.1f} {r['reference_error']:10.1f}   {hops}")
    lines.append("-" * 96)
    lines.append(f"{'mean':>4}  {'':24s} {results['mean_test_error']:10.2f} {results['reference_mean_error']:10.2f}")
    lines.append(f"failed tasks (error > 5 %): {results['failed_tasks']}; wall time {results['wall_seconds']:.0f} s, "
                 f"training CPU time {results['cpu_seconds_training']:.0f} s; load average before/after {results['machine']['load_average_before']} / "
                 f"{results['machine']['load_average_after']}")
    lines.append("reference: the original MemN2N code (3 hops, PE LS RN), as benchmarked in Khuc's MemN2N-babi-python")
    return "\n".join(lines)


def run(args) -> int:
    tasks = parse_tasks(args.tasks)
    cfg = _config(args)
    if args.workers < 1 or args.threads < 1:
        raise ValueError("--workers and --threads must be at least 1")
    what = "jointly" if args.joint else f"per task, {args.workers} worker(s)"
    print(f"MemN2N on bAbI {args.size}: tasks {args.tasks}, {what}; {cfg.hops} hops, d={cfg.dim}, "
          f"{cfg.encoding}, TE={cfg.temporal}, RN={cfg.random_noise}, LS={cfg.linear_start}, "
          f"{cfg.epochs} epochs, best of {cfg.restarts} restart(s)", flush=True)
    results = run_babi(tasks, cfg, args.size, args.joint, args.workers, args.threads)
    results["command"] = "wmlib " + " ".join(sys.argv[1:]) if sys.argv and "babi" in sys.argv else "wmlib babi"
    print(format_table(results))
    if args.json:
        write_json(args.json, results, indent=1)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    from ..memn2n import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("babi", help="train end-to-end memory networks on the bAbI tasks (Chapter 8)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="1-20", help="tasks to run, e.g. 1-20 or 1,2,3 (default 1-20)")
    p.add_argument("--size", default="1k", choices=["1k", "10k"], help="training set size (default 1k)")
    p.add_argument("--json", type=output_file, metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--joint", action="store_true", help="train one model on all the chosen tasks together")
    p.add_argument("--epochs", type=positive_int, help="epochs with the softmax (default 100; joint 60)")
    p.add_argument("--ls-epochs", type=nonnegative_int, help="at most this many linear-start epochs (default 20; joint 30)")
    p.add_argument("--decay-every", type=positive_int, help="halve the learning rate every N epochs (default 25; joint 15)")
    p.add_argument("--restarts", type=positive_int, default=10, help="random restarts per task, best on validation kept (default 10)")
    p.add_argument("--hops", type=positive_int, default=d.hops, help=f"memory hops (default {d.hops})")
    p.add_argument("--dim", type=positive_int, help="embedding dimension (default 20; joint 50)")
    p.add_argument("--encoding", default=d.encoding, choices=["position", "position-code", "bow"],
                   help="sentence encoding: the paper's position encoding (default), the original code's, or a bag of words")
    p.add_argument("--no-temporal", action="store_true", help="no temporal encoding")
    p.add_argument("--no-linear-start", action="store_true", help="no linear start")
    p.add_argument("--mask-empty", action="store_true",
                   help="mask the empty memory slots out of the softmax (default: they take part, score 0)")
    p.add_argument("--random-noise", type=fraction, default=d.random_noise, help="RN rate (default 0.1; 0 = off)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--workers", type=positive_int, default=1, help="tasks trained in parallel processes (default 1)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads per process (default 1)")
    p.set_defaults(func=run)
