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
    return 0
