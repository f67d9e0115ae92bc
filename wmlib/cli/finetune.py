"""``wmlib finetune-sst2``: fine-tune MiniLM on SST-2 into the wmlib cache (Chapters 10 and 11)."""

from __future__ import annotations

from ._args import nonnegative_int, positive_float, positive_int


def register(subparsers) -> None:
    from ..finetune import SST2Recipe

    p = subparsers.add_parser("finetune-sst2", help="fine-tune MiniLM on SST-2 and keep it in the wmlib cache",
                              description="Fine-tune a packaged encoder on SST-2 (Chapter 10), report dev accuracy, "
                                          "and save the weights in the wmlib cache, where Chapters 10 and 11 find them.")
    d = SST2Recipe()
    p.add_argument("--model", default=d.model, help="encoder: packaged name, local folder or hub id (default: %(default)s)")
    p.add_argument("--train-size", type=positive_int, default=d.train_size, help="training sentences (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="passes over the training set (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="(default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--max-len", type=positive_int, default=d.max_len, help="tokens per sentence (default: %(default)s)")
    p.add_argument("--seed", type=nonnegative_int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--force", action="store_true", help="train even if the cache has this recipe")
    p.add_argument("--probe", action="store_true",
                   help="also fit Chapter 10's linear probe: a logistic regression on the frozen encoder's sentence "
                        "vectors of the same training sentences (the vectors are kept in the wmlib cache)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_sst2
    from ..finetune import SST2Recipe, evaluate, fine_tune_sst2
    from ..utils import get_device

    recipe = SST2Recipe(model=args.model, train_size=args.train_size, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, max_len=args.max_len, seed=args.seed)
    model, tok, info = fine_tune_sst2(recipe, cache="refresh" if args.force else "use", device=get_device(args.device))
    result = evaluate(model, tok, load_sst2("dev"), max_len=recipe.max_len)
    how = ("loaded from the cache" if info["cached"] else
           f"trained in {info['train_seconds']:.0f} s wall, {info['train_cpu_seconds']:.0f} s CPU")
    print(f"{recipe.key()}: {how}; SST-2 dev accuracy {result.accuracy:.2%} ({len(result.labels)} sentences)")
    print(f"weights: {info['path']}")
    if args.probe:
        _probe(recipe, result, get_device(args.device))
    return 0


def _probe(recipe, result, device) -> None:
    import time

    import numpy as np
    import torch

    from .. import stats
    from ..data import load_sst2
    from ..finetune import SST2_TRAIN_SIZE, frozen_features, linear_probe

    t0, c0 = time.perf_counter(), time.process_time()
    train, dev = load_sst2("train"), load_sst2("dev")
    if recipe.train_size < SST2_TRAIN_SIZE:  # the fine-tune's own sentences (all of them: file order)
        train = train.subset(recipe.train_size, torch.Generator().manual_seed(recipe.seed))
    x = frozen_features(recipe.model, train.texts, max_len=recipe.max_len, device=device)
    x_dev = frozen_features(recipe.model, dev.texts, max_len=recipe.max_len, device=device)
    probe, info = linear_probe(x, train.labels, seed=recipe.seed)
    probe_correct = probe.predict(x_dev.numpy()) == np.array(dev.labels)
    test = stats.mcnemar((result.predictions == result.labels).numpy(), probe_correct)
    print(f"linear probe on the frozen {recipe.model}, {len(train):,} training sentences (C = {info['C']:g}): "
          f"dev accuracy {stats.rate(probe_correct).text('{:.2%}')}; fine-tune minus probe "
          f"{test.difference.text('{:+.2%}')}, McNemar p = {test.p_value:.2g} "
          f"({time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU)")
