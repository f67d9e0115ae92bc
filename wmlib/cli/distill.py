"""``wmlib distill-sst2``: distil the SST-2 teacher into small students (Chapter 11)."""

from __future__ import annotations

from ._args import fraction, positive_float, positive_int


def register(subparsers) -> None:
    from ..student import StudentRecipe

    p = subparsers.add_parser("distill-sst2", help="distil the SST-2 teacher into small students (Chapter 11)",
                              description="Chapter 11's study: a label-only student and students distilled at "
                                          "several temperatures from the fine-tuned MiniLM of Chapter 10. Keeps "
                                          "them in the wmlib cache, where Chapter 11 finds them, and prints "
                                          "their SST-2 dev accuracy.")
    d = StudentRecipe()
    p.add_argument("--teacher-train-size", type=positive_int, default=d.teacher.train_size,
                   help="training sentences of the teacher to distil (default: %(default)s)")
    p.add_argument("--train-size", type=positive_int, default=d.train_size, help="size of the transfer set (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="passes over the transfer set (default: %(default)s)")
    p.add_argument("--temperatures", type=positive_float, nargs="+", default=[1.0, 2.0, 4.0, 8.0],
                   help="distillation temperatures, one student each (default: 1 2 4 8)")
    p.add_argument("--alpha", type=fraction, default=d.alpha,
                   help="weight of the hard-label loss, in [0, 1] (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--force", action="store_true", help="train even if the cache has a student")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    import torch

    from ..data import load_sst2
    from ..finetune import SST2Recipe, evaluate, fine_tune_sst2, predict_logits
    from ..student import StudentRecipe, distill_sst2, study_recipes
    from ..utils import get_device

    device = get_device(args.device)
    base = StudentRecipe(teacher=SST2Recipe(train_size=args.teacher_train_size), train_size=args.train_size,
                         epochs=args.epochs, alpha=args.alpha)
    recipes = study_recipes(base, args.temperatures)
    dev = load_sst2("dev")
    shared: dict = {}
    for name, recipe in recipes.items():
        if args.force or not recipe.cached():
            if not shared:
                t0, c0 = time.perf_counter(), time.process_time()
                t_model, tok, _ = fine_tune_sst2(recipe.teacher, cache="use", device=device)
                transfer = load_sst2("train").subset(recipe.train_size, torch.Generator().manual_seed(recipe.seed))
                z = predict_logits(t_model, tok, transfer.texts, max_len=recipe.max_len)
                shared = {"teacher": (t_model, tok), "transfer": transfer, "teacher_logits": z}
                print(f"teacher ready, logits on {len(transfer):,} transfer sentences: "
                      f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", flush=True)
        model, tok, info = distill_sst2(recipe, cache="refresh" if args.force else "use", device=device, **shared)
        acc = evaluate(model, tok, dev, max_len=recipe.max_len).accuracy
        how = ("cached" if info["cached"] else
               f"trained in {info['train_seconds']:.0f} s wall, {info['train_cpu_seconds']:.0f} s CPU")
        print(f"{name:>12}: dev accuracy {acc:.2%} ({how}) {info['path']}", flush=True)
    return 0
