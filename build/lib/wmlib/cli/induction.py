"""``wmlib induction``: find induction heads with the repeated-random-tokens test (Chapter 6)."""

from __future__ import annotations

from ._args import nonnegative_int, positive_int


def register(sub) -> None:
    p = sub.add_parser("induction", help="find induction heads with the repeated-random-tokens test")
    p.add_argument("--model", default="smollm2-135m", help="packaged name, local folder or hub id of a causal LM")
    p.add_argument("--sequences", type=positive_int, default=8, help="number of random sequences (default: %(default)s)")
    p.add_argument("--length", type=positive_int, default=50, help="tokens in one copy (default: %(default)s)")
    p.add_argument("--top", type=positive_int, default=10, help="how many heads to list (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="sequences per forward pass (default: %(default)s)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..induction import induction_test, repeated_random_tokens, top_heads
    from ..models import load_causal_lm
    from ..utils import get_device, seed_everything

    g = seed_everything(args.seed)
    model, tok = load_causal_lm(args.model, device=get_device(args.device))
    prefix = [tok.bos_token_id] if tok.bos_token_id is not None else []
    tokens = repeated_random_tokens(args.sequences, args.length, len(tok), g, prefix, tok.all_special_ids)
    res = induction_test(model, tokens, args.length, start=len(prefix), batch_size=args.batch_size)
    first, second = res.copy_losses()
    print(f"{args.model}: {args.sequences} sequences of {args.length} random tokens, repeated")
    print(f"  mean loss, first copy  {first.mean():.2f} nats")
    print(f"  mean loss, second copy {second.mean():.2f} nats")
    N, H = res.induction.shape
    print(f"  induction score of the average head: {res.induction.mean():.3f} over {N}x{H} heads")
    print("  top heads (layer.head: induction score, previous-token score):")
    for layer, head, s in top_heads(res.induction, args.top):
        print(f"    {layer:>2}.{head}: {s:.3f}  {res.previous[layer, head]:.3f}")
    return 0
