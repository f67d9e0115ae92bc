"""Induction heads: finding the copy-from-context circuit in a pretrained decoder (Chapter 6).

The test of Olsson et al. (2022): feed a sequence of random tokens followed by the *same* tokens
again. The first copy is unpredictable; the second is predictable only by looking back into the
context. An **induction head** does exactly that: at a token ``A`` in the second copy it attends to
the token that came right *after* the earlier ``A``, and copies it into the prediction.

Layout of a test sequence (``start`` prefix tokens, then two copies of ``T`` random tokens)::

    position:  0 .. start-1 | start .. start+T-1 | start+T .. start+2T-1
    content:   prefix       | r_1 ... r_T        | r_1 ... r_T

Shapes: n sequences, N layers, H heads, L = start + 2T tokens.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .attention_maps import eager_attention
from .families import Gemma, layout_of
from .utils import progress

__all__ = [
    "repeated_random_tokens", "induction_scores", "previous_token_scores", "per_token_loss", "copy_losses",
    "InductionResult", "induction_test", "ablate_heads", "head_means", "top_heads",
]


def repeated_random_tokens(n: int, length: int, vocab_size: int, generator: torch.Generator | None = None,
                           prefix: Sequence[int] = (), exclude: Iterable[int] = ()) -> Tensor:
    """``n`` sequences of ``length`` random token ids repeated twice, after a fixed ``prefix``.

    Returns a (n, len(prefix) + 2 * length) int64 tensor. Ids are drawn uniformly from
    ``range(vocab_size)`` minus ``exclude`` (pass the tokenizer's special ids).
    """
    if n < 1 or length < 2:
        raise ValueError(f"need n >= 1 sequences of length >= 2, got n={n}, length={length}")
    banned = set(int(i) for i in exclude)
    allowed = torch.tensor([i for i in range(vocab_size) if i not in banned], dtype=torch.long)
    if len(allowed) < 2:
        raise ValueError(f"vocab_size={vocab_size} minus {len(banned)} excluded ids leaves fewer than 2 tokens")
    half = allowed[torch.randint(len(allowed), (n, length), generator=generator)]
    pre = torch.tensor(list(prefix), dtype=torch.long).expand(n, len(prefix))
    return torch.cat([pre, half, half], dim=1)


def _check_square(weights: Tensor, name: str = "weights") -> int:
    if not isinstance(weights, Tensor) or weights.dim() < 2 or weights.shape[-1] != weights.shape[-2]:
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(f"{name} must end in a square (queries, keys) matrix, shape (..., L, L); got {shape}")
    return weights.shape[-1]


def induction_scores(weights: Tensor, length: int, start: int = 1) -> Tensor:
    """Average attention from each token of the second copy to the token right after its earlier
    occurrence: ``mean_i weights[..., i, i - length + 1]`` over ``i = start+length .. start+2*length-1``.

    ``weights`` (..., L, L) with L = start + 2 * length; returns a tensor of shape (...), e.g. (N, H)
    for one sequence's (N, H, L, L). A perfect induction head scores 1, a head spreading its
    attention uniformly over the past scores about 1/(number of keys it sees).
    """
    L = _check_square(weights)
    if length < 1 or start < 0 or L != start + 2 * length:
        raise ValueError(f"weights cover L={L} tokens, but start + 2 * length = {start} + 2 * {length} = "
                         f"{start + 2 * length}: pass the length of one copy and the prefix length")
    queries = torch.arange(start + length, start + 2 * length)
    return weights[..., queries, queries - length + 1].mean(-1)


def previous_token_scores(weights: Tensor, start: int = 1) -> Tensor:
    """Average attention from each token to the token just before it, over queries ``start+1 .. L-1``
    (so that the prefix never counts as "the previous token"). Shape (...) as for
    :func:`induction_scores`. Previous-token heads are the first half of the induction circuit."""
    L = _check_square(weights)
    if not 0 <= start < L - 1:
        raise ValueError(f"start={start} leaves no query with a previous token among L={L} tokens")
    queries = torch.arange(start + 1, L)
    return weights[..., queries, queries - 1].mean(-1)


@torch.no_grad()
def per_token_loss(model, input_ids: Tensor, batch_size: int = 8) -> Tensor:
    """Cross-entropy (nats) of a causal LM's prediction of every next token: (n, L-1).

    Entry ``[b, t]`` is the loss of predicting token ``t+1`` of sequence ``b`` from tokens ``0..t``.
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.shape[1] < 2:
        shape = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be (batch, length) with length >= 2, got {shape}")
    device = next(model.parameters()).device
    out = []
    for chunk in input_ids.split(batch_size):
        logits = model(input_ids=chunk.to(device)).logits.float()
        out.append(F.cross_entropy(logits[:, :-1].transpose(1, 2), chunk[:, 1:].to(device), reduction="none").cpu())
    return torch.cat(out)


def copy_losses(loss: Tensor, length: int, start: int = 1) -> tuple[Tensor, Tensor]:
    """Mean loss per sequence on the first and on the second copy: two (n,) tensors.

    ``loss`` (n, L-1) from :func:`per_token_loss`. The first copy covers the targets ``r_1 .. r_T``
    of the first half. The second copy covers ``r_2 .. r_T`` of the second half: its first token
    follows ``r_T``, which had no earlier occurrence, so no circuit could predict it.
    """
    if loss.dim() != 2 or loss.shape[1] != start + 2 * length - 1:
        raise ValueError(f"loss has shape {tuple(loss.shape)}; for start={start} and length={length} expected "
                         f"(n, {start + 2 * length - 1})")
    first = loss[:, start - 1:start + length - 1] if start >= 1 else loss[:, :length - 1]
    second = loss[:, start + length:start + 2 * length - 1]
    return first.mean(1), second.mean(1)


@dataclass
class InductionResult:
    """What :func:`induction_test` measured.

    ``tokens`` (n, L); ``loss`` (n, L-1) per-token loss; ``induction``, ``previous`` and ``copying``
    (N, H) scores averaged over the n sequences, and the same per sequence in ``*_by_seq``
    (n, N, H); ``first_token`` (N, H) the average attention on position 0 (a decoder's attention
    sink) of queries 1 .. L-1, per sequence in ``first_token_by_seq``; ``example`` (N, H, L, L) the
    attention on the first sequence.
    """

    tokens: Tensor
    length: int
    start: int
    loss: Tensor
    induction_by_seq: Tensor
    previous_by_seq: Tensor
    copying_by_seq: Tensor
    first_token_by_seq: Tensor
    example: Tensor

    @property
    def induction(self) -> Tensor:
        return self.induction_by_seq.mean(0)

    @property
    def previous(self) -> Tensor:
        return self.previous_by_seq.mean(0)

    @property
    def copying(self) -> Tensor:
        return self.copying_by_seq.mean(0)

    @property
    def first_token(self) -> Tensor:
        return self.first_token_by_seq.mean(0)

    def copy_losses(self) -> tuple[Tensor, Tensor]:
        return copy_losses(self.loss, self.length, self.start)


def _norm_weight(norm, offset: float) -> tuple[Tensor, bool]:
    """A norm's elementwise scale (Gemma stores scale - 1) and whether it centres (LayerNorm)."""
    return norm.weight.float() + offset, isinstance(norm, torch.nn.LayerNorm)


class _DirectLogits:
    """Reads a head's output straight through the final norm's scale and the unembedding.

    For an output u (..., width) the logits are l = W_U (g * u) (u centred first after a LayerNorm).
    Only three summaries of l over the vocabulary are needed, and each is exact without forming
    l: the logit of one token, W_U[t] . (g * u); the mean, mean(W_U) . (g * u); and the mean square,
    (g * u)^T C (g * u) with C = W_U^T W_U / V.
    """

    def __init__(self, layout):
        offset = 1.0 if isinstance(layout, Gemma) else 0.0
        self.g, self.center = _norm_weight(layout.final_norm(), offset)
        w = layout.unembedding().weight.float()  # (V, width)
        self.w, self.w_mean, self.gram = w, w.mean(0), w.T @ w / w.shape[0]

    def zscore(self, u: Tensor, target: Tensor) -> Tensor:
        """(l[target] - mean l) / std l for outputs u (..., width) and target ids (...)."""
        if self.center:
            u = u - u.mean(-1, keepdim=True)
        u = u * self.g
        mean = u @ self.w_mean
        var = torch.einsum("...d,de,...e->...", u, self.gram, u) - mean ** 2
        return ((u * self.w[target]).sum(-1) - mean) / var.clamp_min(1e-12).sqrt()


@torch.no_grad()
def induction_test(model, tokens: Tensor, length: int, start: int = 1, batch_size: int = 4) -> InductionResult:
    """Run the repeated-random-tokens test: per-token loss and every head's induction,
    previous-token and copying score. ``tokens`` (n, start + 2 * length) from :func:`repeated_random_tokens`.

    The **copying score** of a head (Olsson et al., 2022: "the head's output increases the logit of
    the attended-to token") reads each head's own output at the queries of the second copy straight
    through the final norm's scale and the unembedding, and measures the logit of the correct next
    token in standard deviations above the mean logit over the vocabulary (direct logit
    attribution: the norms' rescaling by the residual stream's size is left out). A head that
    copies the token it attends to scores several; a head that writes nothing about it about 0.
    """
    if tokens.dim() != 2 or tokens.shape[1] != start + 2 * length:
        raise ValueError(f"tokens must be (n, start + 2 * length) = (n, {start + 2 * length}), "
                         f"got {tuple(tokens.shape)}")
    layout = layout_of(model, "induction_test")
    device = next(model.parameters()).device
    reader = _DirectLogits(layout)
    offset = 1.0 if isinstance(layout, Gemma) else 0.0
    queries = torch.arange(start + length, start + 2 * length - 1)  # second copy, each with a next token
    heads_in: dict[int, Tensor] = {}
    hooks = [layout.out_proj(layer).register_forward_pre_hook(
        lambda module, args, i=i: heads_in.__setitem__(i, args[0])) for i, layer in enumerate(layout.layers)]
    losses, ind, prev, copying, sink, example = [], [], [], [], [], None
    try:
        for chunk in progress(tokens.split(batch_size), desc="induction test", total=-(-len(tokens) // batch_size)):
            with eager_attention(model):  # one forward pass gives both weights and logits
                out = model(input_ids=chunk.to(device), output_attentions=True)
            w = torch.stack([a.float().cpu() for a in out.attentions], dim=1)  # (b, N, H, L, L)
            ind.append(induction_scores(w, length, start))
            prev.append(previous_token_scores(w, start))
            sink.append(w[..., 1:, 0].mean(-1))  # (b, N, H); position 0 attends only to itself: skip it
            example = w[0] if example is None else example
            target = chunk[:, queries + 1].to(device)  # (b, Q)
            per_layer = []
            for i, layer in enumerate(layout.layers):
                z = heads_in[i][:, queries].float().unflatten(-1, (layout.num_heads, -1))  # (b, Q, H, D)
                w_o = layout.out_proj(layer).weight.float().unflatten(1, (layout.num_heads, -1))  # (width, H, D)
                u = torch.einsum("bqhd,ohd->bqho", z, w_o)  # each head's output in the residual stream
                if isinstance(layout, Gemma):  # Gemma normalises the attention output before adding it
                    u = u * _norm_weight(layer.post_attention_layernorm, offset)[0]
                per_layer.append(reader.zscore(u, target[:, :, None].expand(u.shape[:3])).mean(1))  # (b, H)
            copying.append(torch.stack(per_layer, dim=1).cpu())
            logits = out.logits.float()
            losses.append(F.cross_entropy(logits[:, :-1].transpose(1, 2), chunk[:, 1:].to(device),
                                          reduction="none").cpu())
    finally:
        for h in hooks:
            h.remove()
    return InductionResult(tokens, length, start, torch.cat(losses), torch.cat(ind), torch.cat(prev),
                           torch.cat(copying), torch.cat(sink), example)


def top_heads(scores: Tensor, k: int = 10) -> list[tuple[int, int, float]]:
    """The ``k`` largest entries of an (N, H) score table as ``(layer, head, score)``, best first."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be (layers, heads), got shape {tuple(scores.shape)}")
    values, flat = scores.flatten().topk(min(k, scores.numel()))
    H = scores.shape[1]
    return [(int(i) // H, int(i) % H, float(v)) for v, i in zip(values, flat)]


def _heads_by_layer(model, heads, who) -> tuple[object, dict[int, list[int]]]:
    layout = layout_of(model, who)
    by_layer: dict[int, list[int]] = {}
    for item in heads:
        layer, head = (int(x) for x in item[:2])
        if not (0 <= layer < len(layout.layers) and 0 <= head < layout.num_heads):
            raise ValueError(f"head ({layer}, {head}) does not exist: the model has {len(layout.layers)} layers "
                             f"of {layout.num_heads} heads")
        by_layer.setdefault(layer, []).append(head)
    return layout, by_layer


@torch.no_grad()
def head_means(model, input_ids: Tensor, batch_size: int = 8) -> Tensor:
    """Every head's average output, before the output projection, over all positions of all
    sequences in ``input_ids`` (n, L): (N, H, D). What :func:`ablate_heads` puts in a head's place
    for a *mean* ablation."""
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.shape[1] < 1:
        shape = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be (batch, length), got {shape}")
    layout = layout_of(model, "head_means")
    device = next(model.parameters()).device
    sums = [0.0] * len(layout.layers)
    hooks = [layout.out_proj(layer).register_forward_pre_hook(
        lambda module, args, i=i: sums.__setitem__(i, sums[i] + args[0].float().sum((0, 1))))
        for i, layer in enumerate(layout.layers)]
    try:
        for chunk in input_ids.split(batch_size):
            model(input_ids=chunk.to(device))
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(sums).unflatten(-1, (layout.num_heads, -1)).cpu() / input_ids.numel()


@contextmanager
def ablate_heads(model, heads: Iterable[tuple[int, int]], means: Tensor | None = None):
    """Inside the ``with`` block, the listed ``(layer, head)`` pairs are switched off: their slice of
    the input to the output projection is set to zero (zero-ablation) or, given ``means`` (N, H, D)
    from :func:`head_means`, to the head's average output (mean-ablation, which keeps what a head
    writes on every input and removes only what depends on this input)."""
    layout, by_layer = _heads_by_layer(model, heads, "ablate_heads")
    D = layout.head_dim
    if means is not None and (not isinstance(means, Tensor) or
                              tuple(means.shape) != (len(layout.layers), layout.num_heads, D)):
        got = tuple(means.shape) if isinstance(means, Tensor) else type(means).__name__
        raise ValueError(f"means must be (layers, heads, head_dim) = {(len(layout.layers), layout.num_heads, D)} "
                         f"(from head_means), got {got}")
    handles = []

    def make_hook(layer: int, idx: list[int]):
        def hook(module, args):
            x = args[0].clone()
            for h in idx:
                x[..., h * D:(h + 1) * D] = 0 if means is None else means[layer, h].to(x.device, x.dtype)
            return (x, *args[1:])
        return hook

    try:
        for layer, idx in by_layer.items():
            handles.append(layout.out_proj(layout.layers[layer]).register_forward_pre_hook(make_hook(layer, idx)))
        yield model
    finally:
        for h in handles:
            h.remove()
