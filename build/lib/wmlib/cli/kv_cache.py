"""``wmlib kv-cache``: a model's KV-cache size per token and per context, optionally measured (Chapter 1)."""

from __future__ import annotations

from ._args import dtype_name, nonnegative_int, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("kv-cache", help="KV-cache bytes per token of a model (formula, optionally measured)")
    p.add_argument("--model", default="smollm2-135m", help="packaged model name, local folder or hub id (default: %(default)s)")
    p.add_argument("--dtype", type=dtype_name, default="float32",
                   help="the model's and cache's element type: float32, bfloat16 or float16 (default: %(default)s)")
    p.add_argument("--context", type=positive_int, default=None, help="context length in tokens (default: the model's window)")
    p.add_argument("--measure", type=nonnegative_int, default=0, metavar="N",
                   help="also run the model on N random tokens and add up the cache it returns")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..kv_memory import _as_dtype, kv_cache_bytes_per_token, kv_shape_from_config, measure_kv_cache
    from ..models import load_causal_lm
    from ..utils import human_bytes

    dtype = _as_dtype(args.dtype)
    model, _ = load_causal_lm(args.model, dtype=dtype)
    layers, kv_heads, head_dim = kv_shape_from_config(model.config)
    per_token = kv_cache_bytes_per_token(model.config, dtype)
    context = args.context or getattr(model.config, "max_position_embeddings", None) or 0
    print(f"{args.model}: {layers} layers x {kv_heads} KV heads x head_dim {head_dim}, "
          f"{model.config.num_attention_heads} query heads, {str(dtype).removeprefix('torch.')}")
    print(f"formula:  {per_token:,} bytes per token; {human_bytes(per_token * context)} for {context:,} tokens")
    if args.measure:
        ids = torch.randint(model.config.vocab_size, (1, args.measure), generator=torch.Generator().manual_seed(0))
        m = measure_kv_cache(model, ids)
        print(f"measured: {m.bytes_per_token:,.0f} bytes per token over {m.tokens} tokens "
              f"(ratio to the formula {m.bytes_per_token / per_token:.3f})")
    return 0
