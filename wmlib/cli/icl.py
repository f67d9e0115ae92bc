"""``wmlib icl``: Chapter 12's in-context learning study on SST-2, written as JSON.

Every condition (demonstrations k, draws, the chat template, random labels, orders, label words)
classifies the same dev sentences, so the chapter compares conditions with paired tests on the
per-sentence predictions this command records. The defaults are the book's recorded run
(``wmlib/results/icl_sst2.json``):

    wmlib icl --threads 1 --json wmlib/results/icl_sst2.json

The file is rewritten after every condition (``"complete": false`` until the last); run the same
command again with ``--resume`` to continue an interrupted run instead of starting over.
"""

from __future__ import annotations

import os
import platform
import sys
import time

from ._args import dtype_name, int_list, nonnegative_int, output_file, positive_int, write_json


def run(args) -> int:
    import torch

    from ..icl import ICLStudyConfig, run_icl_study, study_conditions, study_data
    from ..models import load_causal_lm
    from ..utils import get_device

    torch.set_num_threads(args.threads)
    try:
        cfg = ICLStudyConfig(n_eval=args.n_eval, ks=tuple([0] + args.ks), draws=args.draws, k_random=args.k_random,
                             k_order=args.k_order, orders=args.orders, k_words=args.k_words, word_draws=args.word_draws,
                             k_template=args.k_template, template_draws=args.template_draws,
                             chat_template=args.chat_template, seed=args.seed)
    except ValueError as err:
        print(f"wmlib icl: error: {err}", file=sys.stderr)
        return 2
    previous = None
    if args.resume:
        if not args.json or not os.path.exists(args.json):
            print("wmlib icl: error: --resume needs --json FILE naming the partial results to continue", file=sys.stderr)
            return 2
        import json

        previous = json.loads(open(args.json).read())
        if (previous.get("model"), previous.get("dtype")) != (args.model, args.dtype):
            print(f"wmlib icl: error: {args.json} holds a run of {previous.get('model')} ({previous.get('dtype')}), "
                  f"not {args.model} ({args.dtype})", file=sys.stderr)
            return 2
    device = get_device(args.device)
    model, tokenizer = load_causal_lm(args.model, device=device, dtype=args.dtype)
    data = study_data(cfg)
    n = len(study_conditions(cfg, bool(getattr(tokenizer, "chat_template", None))))
    print(f"ICL study: {args.model} ({args.dtype}) on {device}, {len(data[0])} SST-2 dev sentences, {n} conditions, "
          f"chat template {cfg.chat_template!r}", flush=True)
    load_before = _load()
    command = "wmlib " + " ".join(a for a in sys.argv[1:] if a != "--resume") if "icl" in sys.argv else "wmlib icl"

    def describe(results):
        results.update(model=args.model, dtype=args.dtype, device=str(device), command=command,
                       machine={"cpu_count": os.cpu_count(), "threads": args.threads,
                                "load_average_before": load_before, "load_average_after": _load(),
                                "python": platform.python_version(), "torch": torch.__version__})
        return results

    def save(results):
        if args.json:
            write_json(args.json, describe(results), indent=1)

    try:
        results = run_icl_study(model, tokenizer, cfg, data=data, batch_size=args.batch_size, previous=previous,
                                log=lambda line: print(line, flush=True), on_condition=save)
    except ValueError as err:  # a previous run that does not match
        print(f"wmlib icl: error: {err}", file=sys.stderr)
        return 2
    save(describe(results))
    print(f"{n} conditions in {results['wall_seconds']:.0f} s wall, {results['cpu_seconds']:.0f} s CPU")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def register(sub) -> None:
    from ..icl import ICLStudyConfig

    d = ICLStudyConfig()
    p = sub.add_parser("icl", help="in-context learning study on SST-2: k, draws, template, random labels, "
                                   "orders, label words (Chapter 12)", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=output_file, metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--model", default="smollm2-135m", help="a packaged model name, a local folder or a hub id")
    p.add_argument("--dtype", type=dtype_name, default="float32", help="float32 (default), bfloat16 or float16")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.add_argument("--n-eval", type=positive_int, default=d.n_eval, help=f"SST-2 dev sentences (default {d.n_eval}, all)")
    p.add_argument("--ks", type=int_list, default=list(d.ks[1:]),
                   help=f"numbers of demonstrations besides 0 (default {','.join(map(str, d.ks[1:]))})")
    p.add_argument("--draws", type=positive_int, default=d.draws, help=f"random draws per k (default {d.draws})")
    p.add_argument("--k-random", type=positive_int, default=d.k_random, help=f"k of the random-label runs (default {d.k_random})")
    p.add_argument("--k-order", type=positive_int, default=d.k_order, help=f"k of the order runs (default {d.k_order})")
    p.add_argument("--orders", type=positive_int, default=d.orders, help=f"orders of one draw (default {d.orders})")
    p.add_argument("--k-words", type=positive_int, default=d.k_words, help=f"k of the label-word runs (default {d.k_words})")
    p.add_argument("--word-draws", type=positive_int, default=d.word_draws, help=f"draws per label-word set (default {d.word_draws})")
    p.add_argument("--k-template", type=positive_int, default=d.k_template,
                   help=f"k of the chat-template comparison (default {d.k_template})")
    p.add_argument("--template-draws", type=positive_int, default=d.template_draws,
                   help=f"draws run under the other chat-template setting (default {d.template_draws})")
    p.add_argument("--chat-template", default=d.chat_template, choices=["auto", "on", "off"],
                   help=f"the main chat-template policy (default {d.chat_template})")
    p.add_argument("--seed", type=nonnegative_int, default=d.seed)
    p.add_argument("--batch-size", type=positive_int, default=16, help="queries per forward pass (default 16)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    p.add_argument("--resume", action="store_true", help="continue the partial run saved in --json FILE")
    p.set_defaults(func=run)
