"""Reading the attention weights of a pretrained Hugging Face model (Chapter 6).

Shapes use these letters: B batch, N layers, H heads, L tokens (queries and keys). The weights of a
whole model are returned as one tensor of shape (B, N, H, L, L): ``weights[b, layer, head, i, j]``
is how much query token ``i`` of sequence ``b`` attends to key token ``j``. Each row sums to 1 over
the keys the query may see.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["AttentionMaps", "eager_attention", "model_attentions", "attention_maps", "sink_fraction", "value_norms"]


@contextmanager
def eager_attention(model):
    """Temporarily switch a Hugging Face model to the plain ("eager") attention implementation.

    Fused kernels (SDPA, FlashAttention) never materialise the L x L weights, so a model running
    them returns no attentions even with ``output_attentions=True``. The eager path computes
    ``softmax(QK^T / sqrt(d)) V`` explicitly and can hand the weights back.
    """
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "set_attn_implementation"):
        raise TypeError(f"expected a Hugging Face PreTrainedModel, got {type(model).__name__}")
    before = getattr(config, "_attn_implementation", None) or "eager"
    if before != "eager":
        model.set_attn_implementation("eager")
        if getattr(config, "_attn_implementation", None) != "eager":  # transformers 4.x: set the config as well
            config._attn_implementation = "eager"
    try:
        yield model
    finally:
        if before != "eager":
            model.set_attn_implementation(before)
            if getattr(config, "_attn_implementation", None) != before:
                config._attn_implementation = before


def _check_ids(input_ids, attention_mask):
    if not isinstance(input_ids, Tensor) or input_ids.dtype not in (torch.int64, torch.int32):
        got = input_ids.dtype if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise TypeError(f"input_ids must be an integer torch.Tensor of token ids, got {got}")
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must have shape (batch, length) with length >= 1, got {tuple(input_ids.shape)}"
                         " (for one sequence use ids[None])")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has shape "
                         f"{tuple(input_ids.shape)}: they must match")


@torch.no_grad()
def model_attentions(model, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """All attention weights of ``model`` on a batch: a float32 CPU tensor (B, N, H, L, L).

    ``input_ids`` (B, L) are token ids; ``attention_mask`` (B, L) marks real tokens with 1 and
    padding with 0 (padded keys then get weight 0). Works for encoders and decoders alike; a
    decoder's weights are zero above the diagonal.
    """
    _check_ids(input_ids, attention_mask)
    device = next(model.parameters()).device
    kwargs = {"attention_mask": attention_mask.to(device)} if attention_mask is not None else {}
    with eager_attention(model):
        out = model(input_ids=input_ids.to(device), output_attentions=True, **kwargs)
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise RuntimeError(f"{type(model).__name__} returned no attention weights even with the eager "
                           "implementation and output_attentions=True")
    return torch.stack([a.float().cpu() for a in attentions], dim=1)


@dataclass
class AttentionMaps:
    """The attention of a model on a batch of texts.

    ``tokens[b]`` are the token strings of text ``b`` (padding included, so every list has L entries);
    ``weights`` (B, N, H, L, L); ``input_ids`` and ``attention_mask`` (B, L) as the tokenizer made them.
    """

    tokens: list[list[str]]
    weights: Tensor
    input_ids: Tensor
    attention_mask: Tensor

    def real_tokens(self, b: int = 0) -> list[str]:
        """The tokens of text ``b`` without padding."""
        return [t for t, m in zip(self.tokens[b], self.attention_mask[b].tolist()) if m]

    def real_weights(self, b: int = 0) -> Tensor:
        """The weights of text ``b`` without padding: (N, H, n, n) with n real tokens."""
        keep = self.attention_mask[b].bool()
        return self.weights[b][..., keep, :][..., keep]


def attention_maps(model, tokenizer, texts: str | Sequence[str], max_length: int = 512) -> AttentionMaps:
    """Tokenize ``texts`` (one string or a list, padded to a common length) and return every
    layer's and head's attention weights as :class:`AttentionMaps`.

    The tokenizer adds the model's special tokens (BERT's [CLS] ... [SEP]), exactly as in use.
    """
    if isinstance(texts, str):
        texts = [texts]
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts must be a non-empty string or a non-empty list of non-empty strings")
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    weights = model_attentions(model, enc["input_ids"], enc["attention_mask"])
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in enc["input_ids"].tolist()]
    return AttentionMaps(tokens, weights, enc["input_ids"], enc["attention_mask"])


def sink_fraction(weights: Tensor, is_sink: Tensor, query_mask: Tensor | None = None) -> Tensor:
    """Fraction of attention mass that lands on "sink" keys, per layer and head: (N, H).

    ``weights`` (B, N, H, L, L); ``is_sink`` (B, L) bool, True for the keys counted as sinks (say
    [CLS] and [SEP]); ``query_mask`` (B, L) bool, True for the queries to average over (default: all;
    pass the tokenizer's attention mask to skip padding). For each query the weights on sink keys
    are summed; the sums are averaged over all queries of all sequences.
    """
    if not isinstance(weights, Tensor) or weights.dim() != 5:
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(f"weights must be (batch, layers, heads, queries, keys), got {shape}"
                         " (for one sequence use weights[None])")
    B, _, _, Lq, Lk = weights.shape
    if not isinstance(is_sink, Tensor) or tuple(is_sink.shape) != (B, Lk):
        shape = tuple(is_sink.shape) if isinstance(is_sink, Tensor) else type(is_sink).__name__
        raise ValueError(f"is_sink must be a (batch, keys) = {(B, Lk)} tensor, got {shape}")
    if query_mask is None:
        query_mask = torch.ones(B, Lq, dtype=torch.bool)
    if tuple(query_mask.shape) != (B, Lq):
        raise ValueError(f"query_mask must be (batch, queries) = {(B, Lq)}, got {tuple(query_mask.shape)}")
    q = query_mask.bool().to(weights.device)
    if not q.any():
        raise ValueError("query_mask selects no query: nothing to average")
    on_sink = (weights * is_sink.bool().to(weights.device)[:, None, None, None, :].to(weights.dtype)).sum(-1)
    # on_sink: (B, N, H, Lq); average over the selected queries of every sequence
    q = q[:, None, None, :].to(weights.dtype)
    return (on_sink * q).sum((0, 3)) / q.sum((0, 3))


@torch.no_grad()
def value_norms(model, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """How much each token *can* write through each head of a BERT-style encoder: (B, N, H, L).

    A head's output is ``sum_j a_ij f(x_j)`` with ``f(x_j) = W_O^h (W_V^h x_j + b_V^h)``, the value of
    token j passed through the head's slice of the output projection. A large weight ``a_ij`` on a
    token whose ``||f(x_j)||`` is tiny moves almost nothing: the head is idle (Kobayashi et al., 2020).
    Supports models with ``encoder.layer[i].attention.self.value`` and ``.attention.output.dense``
    (BERT, MiniLM, RoBERTa).
    """
    _check_ids(input_ids, attention_mask)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None or not all(hasattr(layer, "attention") and hasattr(layer.attention, "self")
                                 and hasattr(layer.attention.self, "value") for layer in layers):
        raise TypeError(f"value_norms supports BERT-style encoders (encoder.layer[i].attention.self.value); "
                        f"{type(model).__name__} is not one")
    values: dict[int, Tensor] = {}
    hooks = [layer.attention.self.value.register_forward_hook(
        lambda module, args, out, i=i: values.__setitem__(i, out)) for i, layer in enumerate(layers)]
    device = next(model.parameters()).device
    try:
        kwargs = {"attention_mask": attention_mask.to(device)} if attention_mask is not None else {}
        model(input_ids=input_ids.to(device), **kwargs)
    finally:
        for h in hooks:
            h.remove()
    H = model.config.num_attention_heads
    out = []
    for i, layer in enumerate(layers):
        v = values[i].unflatten(-1, (H, -1))  # (B, L, H, d_head)
        w_o = layer.attention.output.dense.weight.unflatten(1, (H, -1))  # (D, H, d_head)
        f = torch.einsum("blhd,ohd->bhlo", v, w_o)  # each head's value, mapped into the residual stream
        out.append(f.norm(dim=-1).float().cpu())
    return torch.stack(out, dim=1)
