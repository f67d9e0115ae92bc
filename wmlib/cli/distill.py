"""``wmlib distill-sst2``: distil the SST-2 teacher into small students (Chapter 11)."""

from __future__ import annotations

from ._args import fraction, output_file, positive_float, positive_int


def register(subparsers) -> None:
    from ..student import StudentRecipe

    p = subparsers.add_parser("distill-sst2", help="distil the SST-2 teacher into small students (Chapter 11)",
                              description="Chapter 11's study: a label-only student and students distilled at "
                                          "several temperatures from the fine-tuned MiniLM of Chapter 10. Keeps "
                                          "them in the wmlib cache, where Chapter 11 finds them, and prints "
                                          "their SST-2 dev accuracy. With --study, the recorded study of the "
                                          "chapter (wmlib/results/distill_sst2.json): every condition of "
                                          "wmlib.student.DistillStudy, with several seeds.")
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
    p.add_argument("--study", action="store_true",
                   help="run Chapter 11's recorded study (wmlib.student.DistillStudy: initialisation, temperatures, "
                        "alphas, data and epochs, several seeds; hours of CPU time) instead of the sweep above; "
                        "the other flags, except --device, do not apply")
    p.add_argument("--json", type=output_file, default=None,
                   help="with --study: write the results here after every student (e.g. wmlib/results/distill_sst2.json)")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    import torch

    from ..data import load_sst2
    from ..finetune import SST2Recipe, evaluate, fine_tune_sst2
    from ..student import StudentRecipe, distill_sst2, study_recipes, teacher_train_logits, transfer_indices
    from ..utils import get_device

    device = get_device(args.device)
    if args.study:
        return run_study_cli(args, device)
    if args.json is not None:
        raise ValueError("--json goes with --study (the sweep keeps its students in the wmlib cache)")
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
                # the teacher's logits on all of SST-2 train, cached with it: the same numbers the study uses
                z = teacher_train_logits(recipe.teacher, (t_model, tok))[transfer_indices(recipe.train_size, recipe.seed)]
                shared = {"teacher": (t_model, tok), "transfer": transfer, "teacher_logits": z}
                print(f"teacher ready, its logits on SST-2 train: "
                      f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", flush=True)
        model, tok, info = distill_sst2(recipe, cache="refresh" if args.force else "use", device=device, **shared)
        acc = evaluate(model, tok, dev, max_len=recipe.max_len).accuracy
        how = ("cached" if info["cached"] else
               f"trained in {info['train_seconds']:.0f} s wall, {info['train_cpu_seconds']:.0f} s CPU")
        print(f"{name:>12}: dev accuracy {acc:.2%} ({how}) {info['path']}", flush=True)
    return 0


def run_study_cli(args, device) -> int:
    import shlex
    import sys

    from ..student import DistillStudy, run_study, study_conditions

    study = DistillStudy()
    n = sum(len(seeds) for _, seeds in study_conditions(study).values())
    print(f"Chapter 11's study: {len(study_conditions(study))} conditions, {n} students "
          "(students already in the wmlib cache are loaded, not retrained)", flush=True)
    command = "wmlib distill-sst2 --study" + (f" --json {shlex.quote(str(args.json))}" if args.json else "")
    out = run_study(study, args.json, device=device, command=command, log=lambda m: print(m, flush=True))
    print(f"done in {out['wall_seconds']:.0f} s wall, {out['cpu_seconds']:.0f} s CPU"
          + (f"; results in {args.json}" if args.json else ""), file=sys.stdout)
    return 0
