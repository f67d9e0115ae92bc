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
from .utils import progress

__all__ = [
    "repeated_random_tokens", "induction_scores", "previous_token_scores", "per_token_loss", "copy_losses",
    "InductionResult", "induction_test", "ablate_heads", "top_heads",
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

    ``tokens`` (n, L); ``loss`` (n, L-1) per-token loss; ``induction`` and ``previous`` (N, H) scores
    averaged over the n sequences; ``first_token`` (N, H) the average attention on position 0 (a
    decoder's attention sink) of queries 1 .. L-1; ``example`` (N, H, L, L) the attention on the
    first sequence.
    """

    tokens: Tensor
    length: int
    start: int
    loss: Tensor
    induction: Tensor
    previous: Tensor
    first_token: Tensor
    example: Tensor

    def copy_losses(self) -> tuple[Tensor, Tensor]:
        return copy_losses(self.loss, self.length, self.start)


def induction_test(model, tokens: Tensor, length: int, start: int = 1, batch_size: int = 4) -> InductionResult:
    """Run the repeated-random-tokens test: per-token loss and every head's induction and
    previous-token score. ``tokens`` (n, start + 2 * length) from :func:`repeated_random_tokens`."""
    if tokens.dim() != 2 or tokens.shape[1] != start + 2 * length:
        raise ValueError(f"tokens must be (n, start + 2 * length) = (n, {start + 2 * length}), "
                         f"got {tuple(tokens.shape)}")
    device = next(model.parameters()).device
    losses, ind, prev, sink, example = [], 0.0, 0.0, 0.0, None
    for chunk in progress(tokens.split(batch_size), desc="induction test", total=-(-len(tokens) // batch_size)):
        with torch.no_grad(), eager_attention(model):  # one forward pass gives both weights and logits
            out = model(input_ids=chunk.to(device), output_attentions=True)
        w = torch.stack([a.float().cpu() for a in out.attentions], dim=1)  # (b, N, H, L, L)
        ind = ind + induction_scores(w, length, start).sum(0)
        prev = prev + previous_token_scores(w, start).sum(0)
        sink = sink + w[..., 1:, 0].mean(-1).sum(0)  # position 0 attends only to itself: skip it
        example = w[0] if example is None else example
        logits = out.logits.float()
        losses.append(F.cross_entropy(logits[:, :-1].transpose(1, 2), chunk[:, 1:].to(device),
                                      reduction="none").cpu())
    n = len(tokens)
    return InductionResult(tokens, length, start, torch.cat(losses), ind / n, prev / n, sink / n, example)


def top_heads(scores: Tensor, k: int = 10) -> list[tuple[int, int, float]]:
    """The ``k`` largest entries of an (N, H) score table as ``(layer, head, score)``, best first."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be (layers, heads), got shape {tuple(scores.shape)}")
    values, flat = scores.flatten().topk(min(k, scores.numel()))
    H = scores.shape[1]
    return [(int(i) // H, int(i) % H, float(v)) for v, i in zip(values, flat)]


def _decoder_layers(model):
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(hasattr(getattr(layer, "self_attn", None), "o_proj") for layer in layers):
        raise TypeError(f"ablate_heads supports Llama-style decoders (model.model.layers[i].self_attn.o_proj); "
                        f"{type(model).__name__} is not one")
    return layers


@contextmanager
def ablate_heads(model, heads: Iterable[tuple[int, int]]):
    """Inside the ``with`` block, the listed ``(layer, head)`` pairs write nothing: their slice of
    the input to the output projection ``o_proj`` is set to zero (zero-ablation)."""
    layers = _decoder_layers(model)
    by_layer: dict[int, list[int]] = {}
    for item in heads:
        layer, head = (int(x) for x in item[:2])
        attn = layers[layer].self_attn if 0 <= layer < len(layers) else None
        n_heads = model.config.num_attention_heads
        if attn is None or not 0 <= head < n_heads:
            raise ValueError(f"head ({layer}, {head}) does not exist: the model has {len(layers)} layers "
                             f"of {n_heads} heads")
        by_layer.setdefault(layer, []).append(head)
    handles = []

    def make_hook(idx: list[int], d: int):
        def hook(module, args):
            x = args[0].clone()
            for h in idx:
                x[..., h * d:(h + 1) * d] = 0
            return (x, *args[1:])
        return hook

    try:
        for layer, idx in by_layer.items():
            attn = layers[layer].self_attn
            d = getattr(attn, "head_dim", model.config.hidden_size // model.config.num_attention_heads)
            handles.append(attn.o_proj.register_forward_pre_hook(make_hook(idx, d)))
        yield model
    finally:
        for h in handles:
            h.remove()
