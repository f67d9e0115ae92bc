"""The KV cache as a language model's working memory: its size per token, predicted and measured
(Chapter 1; Chapter 7 builds and manages a cache by hand).

A decoder keeps, for every token it has read, one key and one value vector per layer and per
*key-value* head. With grouped-query attention (GQA) several query heads share one KV head, so the
cache is smaller than the number of query heads suggests. Per token::

    bytes = 2 (K and V) x layers x kv_heads x head_dim x bytes per element

:func:`kv_cache_bytes_per_token` computes it from a model config; :func:`measure_kv_cache` runs the
model and measures the cache it built two ways: the bytes of the key and value tensors
(``total_bytes``: elements x element size, what the tensors *show*) and the bytes of the memory
blocks those tensors live in (``allocated_bytes``, :func:`allocated_bytes`: each distinct storage
counted once, whole; a view into a larger buffer would count the buffer). Compared with the formula
times the tokens read, they say whether the cache holds exactly what it read: transformers' default
dynamic cache grows by concatenation and does; a static cache allocates its full length up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "kv_cache_bytes_per_token", "kv_shape_from_config", "cache_tensors", "allocated_bytes", "KVCacheMeasurement",
    "measure_kv_cache",
]

_DTYPE_NAMES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "int8": torch.int8, "float8_e4m3fn": torch.float8_e4m3fn,
}


def _as_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        if dtype.removeprefix("torch.") in _DTYPE_NAMES:
            return _DTYPE_NAMES[dtype.removeprefix("torch.")]
        raise ValueError(f"unknown dtype name {dtype!r}; use one of {sorted(_DTYPE_NAMES)}")
    raise TypeError(f"dtype must be a torch.dtype or its name, got {type(dtype).__name__}: {dtype!r}")


def _get(config, name: str):
    return config.get(name) if isinstance(config, dict) else getattr(config, name, None)


def kv_shape_from_config(config) -> tuple[int, int, int]:
    """``(layers, kv_heads, head_dim)`` of a decoder config (a transformers config or a dict).

    ``num_key_value_heads`` defaults to ``num_attention_heads`` (plain multi-head attention) and
    ``head_dim`` to ``hidden_size // num_attention_heads``, as in transformers' Llama code.
    """
    layers, heads = _get(config, "num_hidden_layers"), _get(config, "num_attention_heads")
    missing = [n for n, v in (("num_hidden_layers", layers), ("num_attention_heads", heads)) if v is None]
    if missing:
        raise ValueError(f"the config has no {' or '.join(missing)}: is it a decoder-only transformer config? "
                         f"Got {type(config).__name__}")
    kv_heads = _get(config, "num_key_value_heads") or heads
    head_dim = _get(config, "head_dim")
    if head_dim is None:
        hidden = _get(config, "hidden_size")
        if hidden is None:
            raise ValueError("the config has neither head_dim nor hidden_size")
        head_dim = hidden // heads
    for name, v in (("num_hidden_layers", layers), ("num_key_value_heads", kv_heads), ("head_dim", head_dim)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if heads % kv_heads:
        raise ValueError(f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
    return layers, kv_heads, head_dim


def kv_cache_bytes_per_token(config, dtype=torch.float32) -> int:
    """Bytes the KV cache grows by for each token read: 2 x layers x kv_heads x head_dim x element size.

    ``config``: a transformers config (``model.config``) or a dict with the same keys; ``dtype``: the
    cache's element type (a torch.dtype or a name such as ``"bfloat16"``).
    """
    from .kv_cache import kv_bytes_per_token  # the same formula, from shapes (Chapter 7)

    layers, kv_heads, head_dim = kv_shape_from_config(config)
    return kv_bytes_per_token(layers, kv_heads, head_dim, _as_dtype(dtype))


def cache_tensors(past_key_values) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(keys, values)`` pair of every layer of a cache returned by a transformers model.

    Accepts a ``transformers.Cache`` (``.layers[i].keys``; transformers >= 4.56), the older
    ``key_cache``/``value_cache`` lists, or the legacy tuple of ``(keys, values)`` per layer.
    Each tensor has shape ``(batch, kv_heads, tokens, head_dim)``.
    """
    if past_key_values is None:
        raise ValueError("no cache: call the model with use_cache=True (and do not pass labels only)")
    layers = getattr(past_key_values, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers if getattr(layer, "keys", None) is not None]
    if hasattr(past_key_values, "key_cache"):
        return list(zip(past_key_values.key_cache, past_key_values.value_cache))
    if isinstance(past_key_values, (tuple, list)) and all(len(p) >= 2 for p in past_key_values):
        return [(p[0], p[1]) for p in past_key_values]
    raise TypeError(f"do not know how to read a cache of type {type(past_key_values).__name__}")


def allocated_bytes(past_key_values) -> int:
    """Bytes of the memory blocks (storages) that hold a cache's keys and values, each block counted
    once and whole: a tensor that is a view into a larger buffer counts the buffer, two tensors
    sharing one block count it once. This is what the allocator handed out for the cache, not what
    its tensors' shapes say."""
    blocks = {}
    for kv in cache_tensors(past_key_values):
        for t in kv:
            st = t.untyped_storage()
            blocks[(t.device, st.data_ptr())] = st.nbytes()
    return int(sum(blocks.values()))


@dataclass(frozen=True)
class KVCacheMeasurement:
    """What a forward pass left in the cache: ``total_bytes`` (the key and value tensors' elements x
    element size) over ``tokens`` tokens of ``batch`` sequences, in ``layers`` layers of keys and
    values shaped ``key_shape``, and ``allocated_bytes`` (:func:`allocated_bytes`: the memory blocks
    behind them)."""

    tokens: int
    batch: int
    layers: int
    key_shape: tuple[int, ...]
    dtype: torch.dtype
    total_bytes: int
    allocated_bytes: int

    @property
    def bytes_per_token(self) -> float:
        return self.total_bytes / (self.tokens * self.batch)


@torch.no_grad()
def measure_kv_cache(model, input_ids: torch.Tensor, cache=None) -> KVCacheMeasurement:
    """Run ``model`` on ``input_ids`` (``(batch, tokens)`` ints) with ``use_cache=True`` and measure
    the returned cache: the bytes of its key and value tensors and of the memory blocks behind them.
    ``cache``: a transformers ``Cache`` to fill (e.g. a ``StaticCache``); default: the model's own
    (a dynamic cache)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        got = f"a tensor of shape {tuple(input_ids.shape)} and dtype {input_ids.dtype}" \
            if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be an integer tensor of shape (batch, tokens), got {got}")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids has no tokens: the cache of zero tokens is empty")
    device = next(model.parameters()).device
    if cache is not None and not hasattr(cache, "update"):
        raise TypeError(f"cache must be a transformers Cache (e.g. StaticCache), got {type(cache).__name__}")
    out = model(input_ids=input_ids.to(device), use_cache=True, past_key_values=cache)
    pairs = cache_tensors(out.past_key_values)
    total = sum(t.numel() * t.element_size() for kv in pairs for t in kv)
    k0 = pairs[0][0]
    return KVCacheMeasurement(
        tokens=int(input_ids.shape[1]), batch=int(input_ids.shape[0]), layers=len(pairs),
        key_shape=tuple(k0.shape), dtype=k0.dtype, total_bytes=int(total),
        allocated_bytes=allocated_bytes(out.past_key_values),
    )
