"""End-to-end memory networks (MemN2N) on bAbI (Chapter 8).

The model of Sukhbaatar et al. (2015). A story of sentences x_1..x_n is written into memory twice,
as input vectors ``m_i`` and output vectors ``c_i``; the question becomes a state ``u``. Each hop
reads the memory by attention and adds what it read to the state::

    m_i = sum_j l_j * A x_ij + T_A(i)      c_i = sum_j l_j * C x_ij + T_C(i)
    p   = softmax(u^T m_i)                 o   = sum_i p_i c_i
    u^{k+1} = u^k + o^k                    answer = softmax(W u^{K+1})

with ``l_j`` the position-encoding weights (all ones for bag of words) and ``T(i)`` the temporal
encoding of the i-th most recent sentence. Weights are tied *adjacently*: the output matrix of hop
k is the input matrix of hop k+1, the question matrix B is A of hop 1 and W is the transpose of C
of hop K, so a K-hop model has K+1 embedding matrices (and K+1 temporal tables).

Two implementation choices make training fast on a CPU:

* **No d-dimensional word vectors for the memory.** A sentence is stored as a weighted bag of
  words in vocabulary space, s_i = sum_j l_j onehot(x_ij), so ``u^T m_i = s_i (A u)`` and
  ``o = (sum_i p_i s_i) C``: the state is projected into the (small) vocabulary instead of every
  word into d dimensions. With position encoding, ``l_kj = a_j + (k/d) b_j`` is affine in the
  dimension k, so two bags (weights ``a_j`` and ``b_j``) represent it exactly.
* **Random restarts side by side.** Every parameter has a leading *copies* axis: ``copies=10``
  trains ten independently initialised models, each on its own shuffled batches, in one pass.

Shapes: C copies, B questions, M memory slots, J words per sentence, V words, d dimensions.
"""

from __future__ import annotations

import copy
import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "tokenize", "BabiVocab", "BabiData", "vectorize", "position_encoding", "code_position_encoding", "MemN2N", "ENCODINGS",
    "TrainConfig", "TrainResult", "train_memn2n", "evaluate", "prepare_task", "prepare_joint",
    "split_train_val", "random_noise_time", "hop_support", "train_task", "train_joint", "add_distractors",
    "REFERENCE_ERROR",
    "REFERENCE_ERROR_JOINT",
]

# Test error (%) of the original MemN2N code (Matlab, 3 hops, PE LS RN, adjacent tying) on the
# bAbI 1k tasks, trained per task and jointly, as published in the benchmark of Khuc's
# MemN2N-babi-python (github.com/vinhkhuc/MemN2N-babi-python/tree/master/bechmarks). Means: 13.8, 12.4.
REFERENCE_ERROR = {1: 0.1, 2: 8.2, 3: 41.8, 4: 4.4, 5: 13.7, 6: 7.9, 7: 20.3, 8: 11.7, 9: 13.6, 10: 9.7,
                   11: 0.7, 12: 0.0, 13: 0.3, 14: 0.9, 15: 0.0, 16: 0.4, 17: 51.0, 18: 10.5, 19: 81.4,
                   20: 0.0}
REFERENCE_ERROR_JOINT = {1: 0.0, 2: 13.1, 3: 23.4, 4: 5.9, 5: 12.9, 6: 3.7, 7: 22.9, 8: 9.1, 9: 2.7,
                         10: 7.2, 11: 0.8, 12: 0.1, 13: 0.1, 14: 4.2, 15: 0.0, 16: 1.2, 17: 43.6,
                         18: 10.5, 19: 86.7, 20: 0.0}


# sentence encodings: the paper's position encoding, the original code's, a bag of words
ENCODINGS = ("position", "position-code", "bow")


# ------------------------------------------------------------------------------- vocabulary, data
def tokenize(text: str) -> list[str]:
    """'Mary moved to the bathroom.' -> ['mary', 'moved', 'to', 'the', 'bathroom']."""
    return re.findall(r"[a-z0-9]+", text.lower())


class BabiVocab:
    """Words <-> ids. Id 0 is the empty word ``<nil>`` used for padding; answers such as
    'apple,football' (task 8) or 'n,w' (task 19) are single words."""

    NIL = "<nil>"

    def __init__(self, words: Iterable[str]):
        self.words = [self.NIL] + sorted(set(words) - {self.NIL})
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_examples(cls, *example_lists) -> "BabiVocab":
        words = set()
        for examples in example_lists:
            for ex in examples:
                for sentence in ex.story:
                    words.update(tokenize(sentence))
                words.update(tokenize(ex.question))
                words.add(ex.answer.lower())
        return cls(words)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: Sequence[str], strict: bool = True) -> list[int]:
        """Ids of ``words``; unknown words raise (``strict``) or are dropped."""
        out = []
        for w in words:
            i = self.index.get(w)
            if i is None:
                if strict:
                    raise ValueError(f"word {w!r} is not in the vocabulary ({len(self)} words); build "
                                     "the vocabulary from all the examples you will encode")
                continue
            out.append(i)
        return out

    def decode(self, ids) -> list[str]:
        return [self.words[int(i)] for i in ids if int(i) != 0]

    def __repr__(self) -> str:
        return f"BabiVocab({len(self)} words)"


@dataclass
class BabiData:
    """A bAbI split as tensors.

    ``stories`` (N, M, J): the M most recent sentences before each question, oldest first,
    left-aligned, 0 = padding; ``questions`` (N, Jq); ``answers`` (N,); ``n_memories`` (N,);
    ``supporting`` (N, M) bool: the slots that hold the supporting facts; ``tasks`` (N,) the task
    number of each question (for joint training).
    """

    stories: torch.Tensor
    questions: torch.Tensor
    answers: torch.Tensor
    n_memories: torch.Tensor
    supporting: torch.Tensor
    tasks: torch.Tensor

    def __len__(self) -> int:
        return self.answers.shape[0]

    def subset(self, index) -> "BabiData":
        index = torch.as_tensor(index, dtype=torch.long) if not isinstance(index, slice) else index
        return BabiData(*(t[index] for t in self._tensors()))

    def to(self, device) -> "BabiData":
        return BabiData(*(t.to(device) for t in self._tensors()))

    def _tensors(self):
        return (self.stories, self.questions, self.answers, self.n_memories, self.supporting, self.tasks)

    @property
    def memory_size(self) -> int:
        return self.stories.shape[1]


def vectorize(examples, vocab: BabiVocab, memory_size: int = 50, sentence_len: int | None = None,
              question_len: int | None = None, strict: bool = True) -> BabiData:
    """Turn ``wmlib.data.BabiExample`` objects into a :class:`BabiData`.

    Only the ``memory_size`` most recent sentences are kept (the paper uses 50). The memory axis
    is as long as the longest kept story, not ``memory_size``, so short tasks stay small.
    """
    if memory_size < 1:
        raise ValueError(f"memory_size must be at least 1, got {memory_size}")
    examples = list(examples)
    if not examples:
        raise ValueError("no examples to vectorize")
    stories, questions, answers, supports = [], [], [], []
    for ex in examples:
        kept = ex.story[-memory_size:]
        offset = len(ex.story) - len(kept)
        stories.append([vocab.encode(tokenize(s), strict) for s in kept])
        questions.append(vocab.encode(tokenize(ex.question), strict))
        answer = vocab.encode([ex.answer.lower()], strict)
        answers.append(answer[0] if answer else 0)
        supports.append([i - offset for i in ex.supporting if i >= offset])
    M = max(1, max(len(s) for s in stories))
    J = max(1, max((len(x) for s in stories for x in s), default=1))
    Jq = max(1, max(len(q) for q in questions))
    J, Jq = sentence_len or J, question_len or Jq
    N = len(examples)
    S = np.zeros((N, M, J), dtype=np.int64)  # filled in NumPy: far faster than many small tensors
    Q = np.zeros((N, Jq), dtype=np.int64)
    sup = np.zeros((N, M), dtype=bool)
    for n, (story, q, s) in enumerate(zip(stories, questions, supports)):
        for i, sent in enumerate(story):
            S[n, i, : len(sent[:J])] = sent[:J]
        Q[n, : len(q[:Jq])] = q[:Jq]
        sup[n, s] = True
    S, Q, sup = torch.from_numpy(S), torch.from_numpy(Q), torch.from_numpy(sup)
    return BabiData(S, Q, torch.tensor(answers), torch.tensor([len(s) for s in stories]), sup,
                    torch.tensor([getattr(ex, "task", 0) for ex in examples]))


def split_train_val(data: BabiData, val_fraction: float = 0.1, generator: torch.Generator | None = None):
    """Hold out ``val_fraction`` of ``data`` for validation: the last questions, or a random
    subset when a ``generator`` is given (as for joint training, where files are concatenated)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n = len(data)
    n_val = max(1, round(n * val_fraction))
    order = torch.arange(n) if generator is None else torch.randperm(n, generator=generator)
    return data.subset(order[: n - n_val]), data.subset(order[n - n_val:])


def prepare_task(task, size: str = "1k", memory_size: int = 50):
    """Load and vectorize one bAbI task: returns ``(vocab, train, test, train_examples, test_examples)``.
    The vocabulary covers train and test, as in the original code."""
    from .data import load_babi

    tr, te = load_babi(task, "train", size), load_babi(task, "test", size)
    return _prepare(tr, te, memory_size)


def _prepare(tr, te, memory_size):
    vocab = BabiVocab.from_examples(tr, te)
    # as in the original code, test stories keep as many sentences as the longest training story
    M = min(memory_size, max(len(ex.story) for ex in tr))
    J = max(len(tokenize(s)) for ex in tr + te for s in ex.story[-M:] + [ex.question])
    return vocab, vectorize(tr, vocab, M, J, J), vectorize(te, vocab, M, J, J), tr, te


def prepare_joint(tasks: Sequence[int], size: str = "1k", memory_size: int = 50):
    """Like :func:`prepare_task` for several tasks with one shared vocabulary."""
    from .data import load_babi

    tr = [ex for t in tasks for ex in load_babi(t, "train", size)]
    te = [ex for t in tasks for ex in load_babi(t, "test", size)]
    return _prepare(tr, te, memory_size)


# ----------------------------------------------------------------------------------- the model
def position_encoding(J: int, d: int) -> torch.Tensor:
    """The paper's position-encoding weights as a (J, d) tensor: row j-1, column k-1 holds
    ``l_kj = (1 - j/J) - (k/d) (1 - 2j/J)`` for word j = 1..J of a J-word sentence, dimension
    k = 1..d. Bag of words is the special case l_kj = 1."""
    if J < 1 or d < 1:
        raise ValueError(f"J and d must be positive, got J={J}, d={d}")
    j = torch.arange(1, J + 1, dtype=torch.float32)[:, None]
    k = torch.arange(1, d + 1, dtype=torch.float32)[None, :]
    return (1 - j / J) - (k / d) * (1 - 2 * j / J)


def code_position_encoding(J: int, d: int) -> torch.Tensor:
    """The position encoding of the original MemN2N code, as a (J, d) tensor: word j = 1..J,
    dimension k = 1..d, ``l_kj = 1 + 4 (k - (d+1)/2) (j - (J+1)/2) / (d J)``. Unlike the paper's
    formula, J is one length for every sentence (the longest sentence, plus one slot for the
    time word), so a word's weights depend on its absolute position, not on the sentence's length."""
    if J < 1 or d < 1:
        raise ValueError(f"J and d must be positive, got J={J}, d={d}")
    j = torch.arange(1, J + 1, dtype=torch.float32)[:, None]
    k = torch.arange(1, d + 1, dtype=torch.float32)[None, :]
    return 1 + 4 * (k - (d + 1) / 2) * (j - (J + 1) / 2) / (d * J)


def _code_weights(j: torch.Tensor, d: int, J: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) of :func:`code_position_encoding` at positions j: l_kj = a + (k/d) b."""
    c = j - (J + 1) / 2
    return 1 - 2 * (d + 1) * c / (d * J), 4 * c / J


def _word_weights(ids: torch.Tensor, encoding: str, dim: int = 0,
                  code_len: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-word weights (a, b) with l_kj = a_j + (k/d) b_j; zero at padding. ids (..., J).
    ``dim`` and ``code_len`` (the fixed J) are needed by the original code's encoding only."""
    real = ids > 0
    if encoding == "bow":
        return real.float(), None
    if encoding == "position-code":
        a, b = _code_weights(real.cumsum(-1).float(), dim, code_len)
        return a * real, b * real
    length = real.sum(-1, keepdim=True).clamp(min=1).float()
    j = real.cumsum(-1).float()  # 1-based position among the real words
    a = (1 - j / length) * real
    b = (2 * j / length - 1) * real
    return a, b


def random_noise_time(n_memories: torch.Tensor, memory_slots: int, max_time: int, rate: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Temporal indices with random noise (RN): as if empty memories had been inserted into the
    story, each real memory is preceded (on its newer side) by an empty one with probability
    ``rate``, which shifts the time index of it and of every older memory by one.

    n_memories (...,) -> time (..., memory_slots) long, 0 = most recent; capped at ``max_time``.
    """
    shape = n_memories.shape + (memory_slots,)
    slot = torch.arange(memory_slots, device=n_memories.device)
    base = (n_memories[..., None] - 1 - slot).clamp(min=0)  # slot i of n holds time n-1-i
    if rate <= 0:
        return base.clamp(max=max_time)
    real = slot < n_memories[..., None]
    gaps = (torch.rand(shape, generator=generator).to(n_memories.device) < rate) & real
    # the gaps on the newer side of slot i: those of slots i..n-1
    shift = gaps.flip(-1).cumsum(-1).flip(-1)
    return (base + shift * real).clamp(max=max_time)


class MemN2N(nn.Module):
    """An end-to-end memory network with adjacent weight tying, in ``copies`` independent copies.

    Parameters: ``embed`` (copies, hops+1, V, d) holds E_0..E_K, with A^k = E_{k-1}, C^k = E_k,
    B = E_0 and W = E_K; ``temporal`` (copies, hops+1, memory_size, d) holds T_0..T_K likewise.
    ``linear`` (copies,) bool: the memory layers have no softmax (linear start).

    The memory has ``memory_size`` slots; a story of n sentences leaves memory_size - n of them
    empty. An empty slot holds zero vectors (m = c = 0, no temporal term), so with
    ``attend_empty`` (the original code's behaviour) it takes part in the softmax with score 0 and
    adds nothing to o: attention given to it is attention given to *nothing*. With
    ``attend_empty=False`` the empty slots are masked out and the attention over the sentences
    sums to 1.
    """

    def __init__(self, vocab_size: int, dim: int = 20, hops: int = 3, memory_size: int = 50,
                 encoding: str = "position", temporal: bool = True, copies: int = 1, init_std: float = 0.1,
                 attend_empty: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("dim", dim), ("hops", hops),
                            ("memory_size", memory_size), ("copies", copies)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        self.vocab_size, self.dim, self.hops, self.memory_size = vocab_size, dim, hops, memory_size
        self.encoding, self.copies, self.attend_empty = encoding, copies, bool(attend_empty)
        self.embed = nn.Parameter(torch.randn(copies, hops + 1, vocab_size, dim, generator=generator) * init_std)
        self.temporal = (nn.Parameter(torch.randn(copies, hops + 1, memory_size, dim, generator=generator) * init_std)
                         if temporal else None)
        self.register_buffer("linear", torch.zeros(copies, dtype=torch.bool))
        # the factor k/d of the position encoding, k = 1..d
        self.register_buffer("k_over_d", torch.arange(1, dim + 1, dtype=torch.float32) / dim)

    def set_linear(self, on) -> None:
        """Linear start: ``on`` (bool, or a bool per copy) removes the softmax of the memory layers."""
        self.linear.copy_(torch.as_tensor(on, dtype=torch.bool).expand(self.copies))

    def extra_repr(self) -> str:
        return (f"vocab={self.vocab_size}, dim={self.dim}, hops={self.hops}, memory={self.memory_size}, "
                f"encoding={self.encoding}, temporal={self.temporal is not None}, attend_empty={self.attend_empty}, "
                f"copies={self.copies}")

    def select(self, index: int) -> "MemN2N":
        """A one-copy model holding copy ``index`` (e.g. the best random restart)."""
        if not 0 <= index < self.copies:
            raise IndexError(f"copy {index} does not exist: the model has {self.copies} copies")
        one = copy.deepcopy(self)
        one.copies = 1
        one.embed = nn.Parameter(self.embed.detach()[index: index + 1].clone())
        if self.temporal is not None:
            one.temporal = nn.Parameter(self.temporal.detach()[index: index + 1].clone())
        one.linear = self.linear[index: index + 1].clone()
        return one

    # -- input checks ------------------------------------------------------------------------
    def _check(self, stories, questions, time):
        def fail(msg):
            raise ValueError(f"MemN2N: {msg}")

        for name, t in (("stories", stories), ("questions", questions)):
            if not isinstance(t, torch.Tensor):
                fail(f"{name} must be a tensor of word ids, got {type(t).__name__}")
            if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
                fail(f"{name} must hold integer word ids, got dtype {t.dtype}")
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.vocab_size):
                fail(f"{name} holds ids outside [0, {self.vocab_size}): min {int(t.min())}, max {int(t.max())}")
        if stories.dim() not in (3, 4):
            fail(f"stories must be (B, M, J) or (copies, B, M, J), got shape {tuple(stories.shape)}")
        if questions.dim() != stories.dim() - 1:
            fail(f"questions must be (B, J) with (B, M, J) stories, or (copies, B, J) with (copies, B, M, J); "
                 f"got questions {tuple(questions.shape)} and stories {tuple(stories.shape)}")
        if stories.shape[:-2] != questions.shape[:-1]:
            fail(f"stories {tuple(stories.shape)} and questions {tuple(questions.shape)} disagree on the batch")
        if stories.dim() == 4 and stories.shape[0] not in (1, self.copies):
            fail(f"the leading axis of stories ({stories.shape[0]}) must be 1 or copies={self.copies}")
        if stories.shape[-2] > self.memory_size:
            fail(f"stories have {stories.shape[-2]} memory slots but the model holds {self.memory_size}; "
                 "keep the most recent ones (vectorize(..., memory_size=...))")
        if time is not None:
            if time.shape != stories.shape[:-1]:
                fail(f"time must have shape {tuple(stories.shape[:-1])} (one index per slot), got {tuple(time.shape)}")
            if time.numel() and (int(time.min()) < 0 or int(time.max()) >= self.memory_size):
                fail(f"time indices must lie in [0, {self.memory_size}), got [{int(time.min())}, {int(time.max())}]")

    # -- forward -----------------------------------------------------------------------------
    def _memory_words(self, stories, time):
        """Flatten the memory into one list of (word id, weight) per question.

        The temporal encoding is stored as extra rows of each embedding matrix (ids V..V+M-1),
        so each memory gets one more "word", its time index, with weight 1: T_A(i) and T_C(i) are
        then added by the same lookup as the words. With position encoding the list holds every
        word twice, in two halves: ids into rows [0, V') with weights a_j and ids shifted by V'
        with weights b_j (l_kj = a_j + (k/d) b_j, V' = rows per matrix).
        Returns ids, weights (C', B, P*M*J'), the mask of non-empty slots (C', B, M) and P.
        """
        mask = (stories > 0).any(-1)  # (C', B, M)
        J = self._code_len(stories)
        w_a, w_b = _word_weights(stories, self.encoding, self.dim, J)
        ids = stories
        if self.temporal is not None:
            if time is None:  # slot i of n non-empty ones is the (n-1-i)-th most recent
                n = mask.sum(-1, keepdim=True)
                time = (n - 1 - torch.arange(mask.shape[-1], device=mask.device)).clamp(min=0)
            time_word = torch.where(mask, self.vocab_size + time.long(), 0)
            ids = torch.cat([ids, time_word.unsqueeze(-1)], -1)
            if self.encoding == "position-code":  # the time word is word J, weighted like the others
                ta, tb = _code_weights(torch.tensor(float(J)), self.dim, J)
                w_a = torch.cat([w_a, mask.unsqueeze(-1).float() * ta], -1)
                w_b = torch.cat([w_b, mask.unsqueeze(-1).float() * tb], -1)
            else:
                w_a = torch.cat([w_a, mask.unsqueeze(-1).float()], -1)
                if w_b is not None:
                    w_b = torch.cat([w_b, torch.zeros_like(w_b[..., :1])], -1)
        Cp, Bn = ids.shape[:2]
        if w_b is None:
            return ids.reshape(Cp, Bn, -1), w_a.reshape(Cp, Bn, -1), mask, 1
        rows = self._rows()
        ids = torch.stack([ids, ids + rows], 2).reshape(Cp, Bn, -1)
        return ids, torch.stack([w_a, w_b], 2).reshape(Cp, Bn, -1), mask, 2

    def _code_len(self, stories) -> int:
        """The fixed sentence length J of the original code's encoding: words per slot, plus the time word."""
        return stories.shape[-1] + (1 if self.temporal is not None else 0)

    def _rows(self) -> int:
        return self.vocab_size + (self.memory_size if self.temporal is not None else 0)

    def _matrix(self, k: int) -> torch.Tensor:
        """E_k with the temporal table T_k appended as extra rows: (C, V', d)."""
        if self.temporal is None:
            return self.embed[:, k]
        return torch.cat([self.embed[:, k], self.temporal[:, k]], 1)

    def forward(self, stories: torch.Tensor, questions: torch.Tensor, time: torch.Tensor | None = None,
                return_attention: bool = False):
        """stories (B, M, J) or (C, B, M, J) word ids; questions (B, Jq) or (C, B, Jq); ``time``
        (like stories without J): temporal index of each slot, 0 = most recent (default: the
        slots' order). Returns logits (C, B, V) and, with ``return_attention``, the attention
        of every hop (hops, C, B, M) (zero on empty slots; with ``attend_empty`` a row sums to
        less than 1, the rest went to the empty slots)."""
        self._check(stories, questions, time)
        if stories.dim() == 3:
            stories, questions = stories[None], questions[None]
            time = None if time is None else time[None]
        return self._forward(stories.long(), questions.long(), time, return_attention)

    def _forward(self, stories, questions, time, return_attention):
        C, kd = self.copies, self.k_over_d
        Cp, Bn, M, _ = stories.shape
        ids, weights, mask, P = self._memory_words(stories, time)
        ids = ids.expand(C, -1, -1)
        weights = weights.view(Cp, Bn, P, M, -1)
        rows = self._rows()
        # the question: u = sum_j l_j * B q_j, as a weighted bag of words, B = A^1 = E_0
        q_a, q_b = _word_weights(questions, self.encoding, self.dim, self._code_len(stories))
        bag = torch.zeros(Cp, Bn, self.vocab_size, device=stories.device).scatter_add(-1, questions, q_a)
        u = torch.bmm(bag.expand(C, -1, -1), self.embed[:, 0])  # (C, B, d)
        if q_b is not None:
            bag_b = torch.zeros_like(bag).scatter_add(-1, questions, q_b)
            u = u + kd * torch.bmm(bag_b.expand(C, -1, -1), self.embed[:, 0])
        A = self._matrix(0)
        attention = []
        for k in range(1, self.hops + 1):
            Cm = self._matrix(k)  # C^k = A^{k+1} (adjacent tying)
            # u^T m_i = sum_j [a_j (A u)[x_ij] + b_j (A (k/d * u))[x_ij]], time word included
            queries = torch.stack([u, kd * u], 2) if P == 2 else u.unsqueeze(2)  # (C, B, P, d)
            projected = torch.bmm(queries.view(C, Bn * P, -1), A.transpose(-1, -2)).view(C, Bn, P * rows)
            per_word = torch.gather(projected, -1, ids).view(C, Bn, P, M, -1) * weights
            scores = per_word.sum((2, 4))  # (C, B, M)
            scores_real = scores.masked_fill(~mask, -1e30)
            if self.attend_empty:
                # the memory_size - n empty slots hold zero vectors: score 0 each, so together they
                # add (memory_size - n) * e^0 to the softmax's denominator, one logit log(memory_size - n)
                empty = (self.memory_size - mask.sum(-1, keepdim=True)).float().expand(C, -1, -1)
                soft = torch.softmax(torch.cat([scores_real, empty.clamp(min=1e-30).log()], -1), dim=-1)[..., :-1]
            else:
                soft = torch.softmax(scores_real, dim=-1)
            p = torch.where(self.linear[:, None, None], scores, soft) * mask  # (C, B, M)
            attention.append(p)
            # o = sum_i p_i c_i: put p_i l_j on the words of memory i, then look them up in C
            p_word = (p[:, :, None, :, None] * weights).reshape(C, Bn, -1)
            bags = torch.zeros(C, Bn, P * rows, device=p.device).scatter_add(-1, ids, p_word)
            read = torch.bmm(bags.view(C, Bn * P, rows), Cm).view(C, Bn, P, -1)  # (C, B, P, d)
            o = read[:, :, 0] + kd * read[:, :, 1] if P == 2 else read[:, :, 0]
            u = u + o
            A = Cm
        logits = u @ self.embed[:, -1].transpose(-1, -2)  # W = (C^K)^T: (C, B, V)
        logits = logits.masked_fill(torch.arange(self.vocab_size, device=logits.device) == 0, -1e30)  # never <nil>
        return (logits, torch.stack(attention)) if return_attention else logits

    def n_parameters(self) -> int:
        """Parameters of one copy."""
        return sum(p.numel() for p in self.parameters()) // self.copies


# -------------------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    """The paper's recipe (Sukhbaatar et al. 2015, section 4.2), with the original code's choices
    where the paper is silent. With linear start the learning rate starts at ``ls_lr`` (0.005)."""

    dim: int = 20
    hops: int = 3
    memory_size: int = 50  # the most recent sentences kept (the paper's 50)
    trim_memory: bool = True  # ... or fewer when no training story is that long (as the original code)
    encoding: str = "position"
    temporal: bool = True
    random_noise: float = 0.1  # RN: probability of an empty memory before each real one
    linear_start: bool = True
    ls_max_epochs: int = 20  # linear start lasts this many epochs, as in the original code, ...
    ls_patience: int = 20  # ... or ends earlier once the validation loss has not reached a new
    #                        minimum for this many epochs (the paper's wording; 3 was worse on tasks 2, 8)
    epochs: int = 100  # epochs with the softmax (after linear start)
    lr: float = 0.01
    ls_lr: float = 0.005
    decay_every: int = 25  # halve the learning rate every this many epochs
    batch_size: int = 32
    max_grad_norm: float = 40.0
    clip: str = "matrix"  # clip each tied matrix (with its temporal rows) separately, as the original
    #                       code does; "model": the whole gradient of a copy
    restarts: int = 1  # independent copies trained side by side; the best on validation is kept
    init_std: float = 0.1
    attend_empty: bool = True  # empty memory slots take part in the softmax (see MemN2N)
    seed: int = 0


@dataclass
class TrainResult:
    model: MemN2N  # all copies, each holding its best-validation weights
    best: int  # the copy with the lowest validation error (ties: lowest validation loss)
    val_error: torch.Tensor  # (copies,) best validation error of each copy, in [0, 1]
    val_loss: torch.Tensor  # (copies,)
    best_epoch: torch.Tensor  # (copies,) epoch (counted from the start) of each copy's best weights
    ls_epochs: torch.Tensor  # (copies,) epochs spent in linear start
    history: list = field(default_factory=list)  # per epoch: train loss, val error and loss per copy
    seconds: float = 0.0  # wall-clock time
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads): robust to a busy machine

    @property
    def best_model(self) -> MemN2N:
        return self.model.select(self.best)


@contextmanager
def _one_cpu_thread(device):
    """MemN2N's tensors are small: on a CPU one thread is several times faster than two, and
    much faster on a busy machine, where threads wait for each other. Restores the setting."""
    before = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def evaluate(model: MemN2N, data: BabiData, batch_size: int = 1000) -> dict:
    """Error (fraction wrong) and mean cross-entropy of every copy on ``data``; also the
    predictions (C, N) and the attention (hops, C, N, M)."""
    device = model.embed.device
    with _one_cpu_thread(device):
        return _evaluate(model, data, batch_size, device)


def _evaluate(model, data, batch_size, device):
    errs, losses, preds, atts = [], [], [], []
    for start in range(0, len(data), batch_size):
        part = data.subset(slice(start, start + batch_size)).to(device)
        logits, att = model(part.stories, part.questions, return_attention=True)
        y = part.answers.expand(model.copies, -1)
        losses.append(F.cross_entropy(logits.transpose(1, 2), y, reduction="none").sum(-1))
        pred = logits.argmax(-1)
        errs.append((pred != y).sum(-1))
        preds.append(pred)
        atts.append(att)
    n = len(data)
    return {"error": (torch.stack(errs).sum(0).float() / n).cpu(), "loss": (torch.stack(losses).sum(0) / n).cpu(),
            "predictions": torch.cat(preds, -1).cpu(), "attention": torch.cat(atts, 2).cpu()}


def train_memn2n(train: BabiData, val: BabiData, vocab_size: int, config: TrainConfig | None = None,
                 device="cpu", desc: str = "MemN2N") -> TrainResult:
    """Train ``config.restarts`` MemN2N copies side by side with SGD (no momentum), the paper's
    recipe: batches of 32, gradient norm clipped to 40 (per copy), learning rate halved every 25
    epochs; linear start (LS) first if enabled, per copy, until its validation loss stops
    decreasing. Each copy keeps the weights of its best validation epoch (softmax phase)."""
    with _one_cpu_thread(device):
        return _train(train, val, vocab_size, config or TrainConfig(), device, desc)


def _train(train, val, vocab_size, cfg, device, desc):
    from .utils import progress

    if len(train) == 0 or len(val) == 0:
        raise ValueError("train and val must both hold examples")
    if cfg.clip not in ("matrix", "model"):
        raise ValueError(f"config.clip must be 'matrix' or 'model', got {cfg.clip!r}")
    memory_size = max(train.memory_size, val.memory_size) if cfg.trim_memory else cfg.memory_size
    if memory_size > cfg.memory_size:
        raise ValueError(f"the data hold up to {memory_size} memories but config.memory_size is "
                         f"{cfg.memory_size}: vectorize them with memory_size={cfg.memory_size}")
    start_time, start_cpu = time.perf_counter(), time.process_time()
    g = torch.Generator().manual_seed(cfg.seed)
    C = cfg.restarts
    model = MemN2N(vocab_size, cfg.dim, cfg.hops, memory_size, cfg.encoding, cfg.temporal, C,
                   cfg.init_std, cfg.attend_empty, generator=g).to(device)
    train, val = train.to(device), val.to(device)
    in_ls = torch.full((C,), cfg.linear_start)
    model.set_linear(in_ls)
    ls_epochs = torch.zeros(C, dtype=torch.long)
    main_epoch = torch.zeros(C, dtype=torch.long)  # epochs done with the softmax
    ls_best = torch.full((C,), math.inf)
    ls_since = torch.zeros(C, dtype=torch.long)
    best_err, best_loss = torch.full((C,), math.inf), torch.full((C,), math.inf)
    best_epoch = torch.full((C,), -1, dtype=torch.long)
    best_params = [p.detach().clone() for p in model.parameters()]
    params = list(model.parameters())
    N, B = len(train), cfg.batch_size
    steps = max(1, N // B)
    total_epochs = (cfg.ls_max_epochs if cfg.linear_start else 0) + cfg.epochs
    history = []
    for epoch in progress(range(total_epochs), desc=desc, total=total_epochs):
        done = main_epoch >= cfg.epochs
        if bool(done.all()):
            break
        lr = torch.where(in_ls, torch.tensor(cfg.ls_lr),
                         (cfg.ls_lr if cfg.linear_start else cfg.lr) * 0.5 ** (main_epoch // cfg.decay_every).float())
        lr = torch.where(done, torch.tensor(0.0), lr).to(device)
        order = torch.rand(C, N, generator=g).argsort(-1).to(device)  # each copy its own shuffle
        run_loss = torch.zeros(C, device=device)
        for s in range(steps):
            idx = order[:, s * B:(s + 1) * B]  # (C, B)
            n_mem = train.n_memories[idx]
            slots = int(n_mem.max())  # drop the slots that are empty in the whole batch
            stories, questions, answers = train.stories[idx][..., :slots, :], train.questions[idx], train.answers[idx]
            t = random_noise_time(n_mem, slots, memory_size - 1,
                                  cfg.random_noise if cfg.temporal else 0.0, g)
            logits = model._forward(stories, questions, t, False)  # (inputs checked by vectorize)
            # the loss is summed over the batch, as in the original code: the learning rate 0.01
            # and the clipping threshold 40 refer to that sum
            loss = F.cross_entropy(logits.transpose(1, 2), answers, reduction="none").sum(-1)  # (C,)
            model.zero_grad(set_to_none=True)
            loss.sum().backward()  # copies share no parameter: each gets the gradient of its own loss
            with torch.no_grad():
                # squared gradient norm of each copy's matrix E_k (with T_k): (C, K+1)
                sq = sum(p.grad.pow(2).sum((-1, -2)) for p in params)
                if cfg.clip == "model":
                    sq = sq.sum(-1, keepdim=True)
                scale = lr[:, None] * torch.clamp(cfg.max_grad_norm / (sq.sqrt() + 1e-12), max=1.0)
                for p in params:
                    p -= scale[..., None, None] * p.grad
            run_loss += loss.detach()
        with torch.no_grad():
            ev = _evaluate(model, val, 1000, device)
        history.append({"epoch": epoch, "train_loss": (run_loss / (steps * B)).cpu(), "val_error": ev["error"],
                        "val_loss": ev["loss"], "linear": in_ls.clone()})
        # softmax-phase copies: keep their best weights
        soft = ~in_ls & ~done
        better = soft & ((ev["error"] < best_err) | ((ev["error"] == best_err) & (ev["loss"] < best_loss)))
        if bool(better.any()):
            best_err = torch.where(better, ev["error"], best_err)
            best_loss = torch.where(better, ev["loss"], best_loss)
            best_epoch = torch.where(better, torch.tensor(epoch), best_epoch)
            for bp, p in zip(best_params, params):
                bp[better.to(device)] = p.detach()[better.to(device)]
        main_epoch += soft.long()
        # linear start: end it for the copies whose validation loss stopped decreasing
        if bool(in_ls.any()):
            ls_epochs += in_ls.long()
            improved = ev["loss"] < ls_best
            ls_best = torch.where(in_ls & improved, ev["loss"], ls_best)
            ls_since = torch.where(improved, torch.zeros_like(ls_since), ls_since + 1)
            stop = in_ls & ((ls_since >= cfg.ls_patience) | (ls_epochs >= cfg.ls_max_epochs) | ~torch.isfinite(ev["loss"]))
            if bool(stop.any()):
                in_ls = in_ls & ~stop
                model.set_linear(in_ls)
    with torch.no_grad():
        for bp, p in zip(best_params, params):
            p.copy_(bp)
    model.set_linear(False)
    key = best_err * 1e6 + best_loss.nan_to_num(1e6).clamp(max=1e5)  # error first, then loss
    best = int(key.argmin())
    return TrainResult(model, best, best_err, best_loss, best_epoch, ls_epochs, history,
                       time.perf_counter() - start_time, time.process_time() - start_cpu)


def hop_support(attention: torch.Tensor, supporting: torch.Tensor) -> torch.Tensor:
    """How often each hop's most attended memory is a supporting fact.

    attention (hops, N, M) (one copy), supporting (N, M) bool -> (hops,) fractions.
    """
    if attention.dim() != 3 or attention.shape[1:] != supporting.shape:
        raise ValueError(f"attention must be (hops, N, M) matching supporting (N, M); got "
                         f"{tuple(attention.shape)} and {tuple(supporting.shape)}")
    top = attention.argmax(-1)  # (hops, N)
    return torch.gather(supporting.expand(attention.shape[0], -1, -1), -1, top[..., None]).squeeze(-1).float().mean(-1)


def train_task(task, config: TrainConfig | None = None, size: str = "1k", device="cpu", desc: str | None = None) -> dict:
    """Train MemN2N on one bAbI task (10 % of train held out) and report on its test set:
    test error (%) of the copy chosen on validation, of every copy, hop statistics, timings."""
    from .data import BABI_TASKS, _task_number

    n = _task_number(task)
    cfg = config or TrainConfig()
    vocab, train, test, _, _ = prepare_task(n, size, cfg.memory_size)
    tr, va = split_train_val(train)
    res = train_memn2n(tr, va, len(vocab), cfg, device, desc or f"task {n}")
    ev = evaluate(res.model, test)
    b = res.best
    return {
        "task": n, "name": BABI_TASKS[n], "test_error": round(100 * float(ev["error"][b]), 2),
        "val_error": round(100 * float(res.val_error[b]), 2),
        "reference_error": REFERENCE_ERROR[n],
        "test_error_restarts": [round(100 * float(e), 2) for e in ev["error"]],
        "val_error_restarts": [round(100 * float(e), 2) for e in res.val_error],
        "best_restart": b, "ls_epochs": int(res.ls_epochs[b]), "best_epoch": int(res.best_epoch[b]),
        "hop_support": [round(float(x), 4) for x in hop_support(ev["attention"][:, b], test.supporting)],
        "vocab_size": len(vocab), "memory_size": res.model.memory_size, "seconds": round(res.seconds, 1),
        "cpu_seconds": round(res.cpu_seconds, 1),
    }


def train_joint(tasks: Sequence[int], config: TrainConfig | None = None, size: str = "1k", device="cpu",
                desc: str = "joint") -> dict:
    """Train one MemN2N on several bAbI tasks at once (a shared vocabulary; 10 % of the pooled
    training questions, drawn at random, held out) and report the test error of each task."""
    from .data import BABI_TASKS, _task_number

    tasks = [_task_number(t) for t in tasks]
    cfg = config or TrainConfig()
    vocab, train, test, _, _ = prepare_joint(tasks, size, cfg.memory_size)
    tr, va = split_train_val(train, generator=torch.Generator().manual_seed(cfg.seed))
    res = train_memn2n(tr, va, len(vocab), cfg, device, desc)
    ev = evaluate(res.model, test)
    b = res.best
    wrong = ev["predictions"][b] != test.answers
    rows = {}
    for t in tasks:
        sel = test.tasks == t
        att = ev["attention"][:, b][:, sel]
        rows[t] = {"task": t, "name": BABI_TASKS[t], "test_error": round(100 * float(wrong[sel].float().mean()), 2),
                   "reference_error": REFERENCE_ERROR_JOINT[t],
                   "hop_support": [round(float(x), 4) for x in hop_support(att, test.supporting[sel])]}
    return {"tasks": rows, "val_error": round(100 * float(res.val_error[b]), 2), "best_restart": b,
            "val_error_restarts": [round(100 * float(e), 2) for e in res.val_error],
            "ls_epochs": int(res.ls_epochs[b]), "best_epoch": int(res.best_epoch[b]), "vocab_size": len(vocab),
            "memory_size": res.model.memory_size, "seconds": round(res.seconds, 1),
            "cpu_seconds": round(res.cpu_seconds, 1)}


_NOT_NAMES = {"The", "A", "An", "Where", "What", "Who", "Whom", "Is", "Why", "How", "Does", "Do", "Did", "Was"}
_QUESTION_WORDS = {"where", "what", "who", "is", "the", "a", "was", "before", "did", "does", "do", "how", "many",
                   "carrying", "of", "in", "to", "why", "go", "get", "with", "are"}


def _names(text: str) -> set[str]:
    return {w for w in re.findall(r"[A-Z][a-z]+", text) if w not in _NOT_NAMES}


def add_distractors(examples, k: int, generator: torch.Generator, pool: Sequence[str] | None = None):
    """Copies of ``examples`` with ``k`` irrelevant sentences inserted at random places in each story.

    The distractors come from ``pool`` (default: all the sentences of ``examples``' stories) and
    are *irrelevant* by construction: they name no person of the question or of the supporting
    facts and contain no content word of the question (so "Mary went to the kitchen" is never
    added to a story that asks "Where is Mary?"). The supporting-fact indices follow the shift.
    """
    from .data import BabiExample

    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    examples = list(examples)
    if pool is None:
        pool = sorted({s for ex in examples for s in ex.story})
    pool = list(pool)
    out = []
    for ex in examples:
        if k == 0:
            out.append(ex)
            continue
        banned_names = _names(ex.question) | {n for i in ex.supporting for n in _names(ex.story[i])}
        banned_words = set(tokenize(ex.question)) - _QUESTION_WORDS
        own = set(ex.story)
        chosen = []
        for i in torch.randperm(len(pool), generator=generator).tolist():
            s = pool[i]
            if s in own or _names(s) & banned_names or set(tokenize(s)) & banned_words:
                continue
            chosen.append(s)
            if len(chosen) == k:
                break
        if len(chosen) < k:
            raise ValueError(f"only {len(chosen)} irrelevant sentences for {ex.question!r}; use a larger pool")
        # a random place (0..n, before the story's sentence of that index) for each distractor
        places = torch.randint(0, len(ex.story) + 1, (k,), generator=generator).sort().values.tolist()
        story, new_index, d = [], [], 0
        for i, sentence in enumerate(ex.story):
            while d < k and places[d] <= i:
                story.append(chosen[d])
                d += 1
            new_index.append(len(story))
            story.append(sentence)
        story.extend(chosen[d:])
        out.append(BabiExample(story, ex.question, ex.answer, [new_index[i] for i in ex.supporting], ex.task))
    return out
