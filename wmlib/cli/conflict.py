"""``wmlib conflict``: which memory wins, the context or the weights, when thousands of tokens of
unrelated text separate a false statement from its question (Chapter 2's recorded run).

The defaults are :data:`wmlib.knowledge.DISTANCE_RUN`, the configuration of
``wmlib/results/ch02_distance.json``; flags change one part of it.
"""

from __future__ import annotations

import json
import sys

from ._args import dtype_name, nonnegative_int, output_file, positive_int, write_json


def _distances(text: str) -> list[int]:
    import argparse

    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts >= 0, e.g. 0,16,512, got {text!r}")
    return values


def _config(args) -> dict:
    """The run's configuration: :data:`wmlib.knowledge.DISTANCE_RUN` with the flags given."""
    from ..knowledge import DISTANCE_RUN

    config = json.loads(json.dumps(DISTANCE_RUN))  # a deep copy, as JSON records it
    for key in ("model", "dtype", "chat_template", "seed", "facts", "distances", "draws"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    return config


def run(args) -> int:
    import torch

    from ..knowledge import distance_run
    from ..utils import progress

    if args.threads:
        torch.set_num_threads(args.threads)
    out = distance_run(config=_config(args), progress=progress)
    out["command"] = "wmlib " + " ".join(sys.argv[1:]) if "conflict" in sys.argv else "wmlib conflict"
    by_distance = {}
    for row in out["trials"]:
        by_distance.setdefault(row["distance"], []).append(row["context"])
    for d, wins in sorted(by_distance.items()):
        print(f"distance {d:5d} tokens: the context wins {sum(wins)} of {len(wins)} trials")
    print(f"{out['cpu_seconds']:.0f} s CPU, {out['wall_seconds']:.0f} s wall", file=sys.stderr)
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    from ..knowledge import DISTANCE_RUN as d

    p = sub.add_parser("conflict", help="context vs weights at distances of thousands of tokens (Chapter 2)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=output_file, metavar="FILE", help="write the trials as JSON to FILE")
    p.add_argument("--model", help=f"packaged name, local folder or hub id (default {d['model']})")
    p.add_argument("--dtype", type=dtype_name, help=f"float32, bfloat16 or float16 (default {d['dtype']})")
    p.add_argument("--chat-template", choices=["auto", "on", "off"], dest="chat_template",
                   help=f"wrap the text in the tokenizer's chat template (default {d['chat_template']})")
    p.add_argument("--facts", type=positive_int, help=f"known facts sampled (default {d['facts']})")
    p.add_argument("--distances", type=_distances, help="distances in tokens (default "
                   + ",".join(map(str, d["distances"])) + ")")
    p.add_argument("--draws", type=positive_int, help=f"filler draws per fact (default {d['draws']})")
    p.add_argument("--seed", type=nonnegative_int, help=f"seed of the sample, answers and fillers (default {d['seed']})")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    p.set_defaults(func=run)
