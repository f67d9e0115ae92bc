"""Sentence embeddings from a BERT-family encoder (Chapters 12 and 13).

all-MiniLM-L6-v2 was trained (as a sentence-transformer, Reimers and Gurevych 2019) so that the
*mean* of its output vectors over a sentence's real tokens, scaled to unit length, is a sentence
embedding: two sentences with similar meaning get a large dot product (cosine similarity).

    encoder = SentenceEncoder.load("minilm-l6")
    vectors = encoder.encode(["I moved house.", "My new address is ..."])   # (2, 384), unit rows
"""

from __future__ import annotations

from typing import Sequence

import torch

from .utils import progress

__all__ = ["mean_pool", "SentenceEncoder"]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the hidden states of the real tokens: hidden (B, L, D), mask (B, L) -> (B, D).

    Padding must not count, or a sentence's vector would depend on the other sentences of its batch.
    """
    if hidden.dim() != 3 or tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"mean_pool needs hidden (B, L, D) and mask (B, L); got {tuple(hidden.shape)} and "
                         f"{tuple(attention_mask.shape)}")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class SentenceEncoder:
    """``encode(texts) -> (N, D)`` float32 unit vectors: mean-pooled, L2-normalised encoder states."""

    def __init__(self, model, tokenizer, max_length: int = 128, batch_size: int = 64):
        if not hasattr(model, "config") or not callable(model):
            raise TypeError(f"model must be a Hugging Face encoder (e.g. from load_encoder), got {type(model).__name__}")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length, self.batch_size = max_length, batch_size

    @classmethod
    def load(cls, name: str = "minilm-l6", device=None, **kwargs) -> "SentenceEncoder":
        from .models import load_encoder

        model, tok = load_encoder(name, device=device)
        return cls(model, tok, **kwargs)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], desc: str | None = None) -> torch.Tensor:
        """Unit-length embeddings (N, D) of ``texts``, computed ``batch_size`` at a time."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings; wrap a single text: encode([text])")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"texts {bad[:5]} are empty or not strings: every text needs some words to embed")
        device = next(self.model.parameters()).device
        out = torch.empty(len(texts), self.dim)
        # Sorting by length keeps padding, hence wasted work, small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in progress(batches, desc=desc or "embedding", total=len(batches)):
            enc = self.tokenizer([texts[i] for i in batch], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(device)
            hidden = self.model(**enc).last_hidden_state
            v = mean_pool(hidden, enc["attention_mask"]).float()
            out[batch] = torch.nn.functional.normalize(v, dim=-1).cpu()
        return out
