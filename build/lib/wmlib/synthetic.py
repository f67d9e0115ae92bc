"""Synthetic tasks that can only be solved by holding information in working memory.

Associative recall (Chapter 5): the model reads key-value pairs, then a key, and must answer the
value that was paired with it *in this sequence*. Pairs are fresh random draws every time, so
nothing can be memorised in the weights: the answer has to be fetched from the context.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AssociativeRecall"]


@dataclass(frozen=True)
class AssociativeRecall:
    """Key-value recall sequences and their answers.

    With ``interleaved=False`` (the default) each pair is one token, written ``c:7``, and a
    sequence of ``n_pairs`` pairs ends with a query token ``c?``; the answer is the value token
    ``7``. Finding the pair whose key matches the query is one content-based attention lookup.

    With ``interleaved=True`` keys and values are separate tokens, ``c 7 a 3 ... ? c``: now a
    value must first be bound to the key *before* it (attention to the previous position) and only
    then looked up -- a two-step circuit that small models take far longer to discover (the
    induction heads of Chapter 6).

    Keys within a sequence are distinct; values may repeat.
    """

    n_pairs: int = 8
    n_keys: int = 26
    n_values: int = 10
    interleaved: bool = False

    def __post_init__(self):
        if self.n_pairs < 1:
            raise ValueError(f"n_pairs must be at least 1, got {self.n_pairs}")
        if self.n_pairs > self.n_keys:
            raise ValueError(f"n_pairs ({self.n_pairs}) cannot exceed n_keys ({self.n_keys}): keys are distinct")
        if self.n_values < 2:
            raise ValueError(f"n_values must be at least 2, got {self.n_values}")

    # Token layout. Pair-token format: [pairs K*V | queries K | values V].
    # Interleaved format:              [keys K | values V | query marker 1].
    @property
    def vocab_size(self) -> int:
        K, V = self.n_keys, self.n_values
        return K + V + 1 if self.interleaved else K * V + K + V

    @property
    def value_offset(self) -> int:
        """Token id of value 0; value v is ``value_offset + v``."""
        return self.n_keys if self.interleaved else self.n_keys * self.n_values + self.n_keys

    @property
    def seq_len(self) -> int:
        return 2 * self.n_pairs + 2 if self.interleaved else self.n_pairs + 1

    @property
    def chance(self) -> float:
        """Accuracy of guessing one of the values uniformly at random."""
        return 1.0 / self.n_values

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Return (inputs (B, seq_len) int64, answers (B,) int64 value token ids)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        B, K, V, g = batch_size, self.n_keys, self.n_values, generator
        keys = torch.rand(B, K, generator=g).argsort(dim=1)[:, : self.n_pairs]  # distinct keys
        values = torch.randint(V, (B, self.n_pairs), generator=g)
        which = torch.randint(self.n_pairs, (B,), generator=g)
        rows = torch.arange(B)
        query, answer = keys[rows, which], values[rows, which]
        if self.interleaved:
            pairs = torch.stack([keys, K + values], dim=2).reshape(B, 2 * self.n_pairs)
            marker = torch.full((B, 1), K + V)
            inputs = torch.cat([pairs, marker, query[:, None]], dim=1)
        else:
            inputs = torch.cat([keys * V + values, (K * V + query)[:, None]], dim=1)
        return inputs, self.value_offset + answer

    def token_str(self, token: int) -> str:
        K, V = self.n_keys, self.n_values
        key = (lambda i: string.ascii_lowercase[i] if K <= 26 else f"k{i}")
        val = (lambda i: str(i) if V <= 10 else f"v{i}")
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"token {token} is outside the vocabulary [0, {self.vocab_size})")
        if self.interleaved:
            return key(token) if token < K else val(token - K) if token < K + V else "?"
        if token < K * V:
            return f"{key(token // V)}:{val(token % V)}"
        if token < K * V + K:
            return f"{key(token - K * V)}?"
        return val(token - K * V - K)

    def decode(self, inputs: Tensor) -> str:
        """A readable string for one sequence (1-D tensor), e.g. 'c:7 a:3 f:1 a?'."""
        if inputs.dim() != 1:
            raise ValueError(f"decode takes one sequence (1-D); got shape {tuple(inputs.shape)}")
        return " ".join(self.token_str(int(t)) for t in inputs)
