"""``wmlib icl``: Chapter 12's in-context learning study on SST-2, written as JSON.

Every condition (demonstrations k, draws, the chat template, random labels, orders, label words)
classifies the same dev sentences, so the chapter compares conditions with paired tests on the
per-sentence predictions this command records. The defaults are the book's recorded run
(``book/results/icl_sst2.json``):

    wmlib icl --json book/results/icl_sst2.json
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
    cfg = ICLStudyConfig(n_eval=args.n_eval, ks=tuple([0] + args.ks), draws=args.draws, k_random=args.k_random,
                         k_order=args.k_order, orders=args.orders, k_words=args.k_words, word_draws=args.word_draws,
                         template_draws=args.template_draws, chat_template=args.chat_template, seed=args.seed)
    device = get_device(args.device)
    model, tokenizer = load_causal_lm(args.model, device=device, dtype=args.dtype)
    data = study_data(cfg)
    n = len(study_conditions(cfg, bool(getattr(tokenizer, "chat_template", None))))
    print(f"ICL study: {args.model} ({args.dtype}) on {device}, {len(data[0])} SST-2 dev sentences, {n} conditions, "
          f"chat template {cfg.chat_template!r}", flush=True)
    load_before = _load()
    results = run_icl_study(model, tokenizer, cfg, data=data, batch_size=args.batch_size,
                            log=lambda line: print(line, flush=True))
    results.update(model=args.model, dtype=args.dtype, device=str(device),
                   command="wmlib " + " ".join(sys.argv[1:]) if sys.argv and "icl" in sys.argv else "wmlib icl",
                   machine={"cpu_count": os.cpu_count(), "threads": args.threads, "load_average_before": load_before,
                            "load_average_after": _load(), "python": platform.python_version(),
                            "torch": torch.__version__})
    print(f"{n} conditions in {results['wall_seconds']:.0f} s wall, {results['cpu_seconds']:.0f} s CPU")
    if args.json:
        write_json(args.json, results, indent=1)
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
    p.add_argument("--template-draws", type=positive_int, default=d.template_draws,
                   help=f"draws run under the other chat-template setting (default {d.template_draws})")
    p.add_argument("--chat-template", default=d.chat_template, choices=["auto", "on", "off"],
                   help=f"the main chat-template policy (default {d.chat_template})")
    p.add_argument("--seed", type=nonnegative_int, default=d.seed)
    p.add_argument("--batch-size", type=positive_int, default=16, help="queries per forward pass (default 16)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    p.set_defaults(func=run)
