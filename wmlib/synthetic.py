"""Synthetic tasks that can only be solved by holding information in working memory.

Associative recall (Chapter 5): the model reads key-value pairs, then a key, and must answer the
value that was paired with it *in this sequence*. Pairs are fresh random draws every time, so
nothing can be memorised in the weights: the answer has to be fetched from the context.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AssociativeRecall", "RECALL_GPT", "RECALL_TEST_SEED", "train_recall", "train_recall_seeds", "recall_test_set",
           "answers_correct"]


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
        for name in ("n_pairs", "n_keys", "n_values"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
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

    def sequences(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """(B, seq_len + 1) int64: sampled inputs followed by their answers, for next-token training
        (the prediction at position t is scored against token t + 1, at every position)."""
        x, y = self.sample(batch_size, generator)
        return torch.cat([x, y[:, None]], dim=1)

    def loss_floor(self) -> Tensor:
        """(seq_len,) the smallest expected next-token loss, in nats, of the prediction at each
        position of :meth:`sequences`: the entropy of the next token given the tokens before it.

        Pairs are random, so predicting a pair (or a key, or a value) costs the log of the number
        of choices left (keys are distinct); the query key is one of the ``n_pairs`` keys seen; the
        query marker and the answer are determined, cost 0."""
        K, V, n = self.n_keys, self.n_values, self.n_pairs
        if self.interleaved:  # tokens k0 v0 k1 v1 ... ? q a; the prediction at t is of token t + 1
            nxt = [math.log(V) if j % 2 else math.log(K - j // 2) for j in range(1, 2 * n)] + [0.0, math.log(n), 0.0]
        else:  # tokens p0 ... p_{n-1} q? a
            nxt = [math.log((K - i) * V) for i in range(1, n)] + [math.log(n), 0.0]
        return torch.tensor(nxt)

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


# ------------------------------------------------------------------------------ training a GPT on it
RECALL_GPT = {"d_model": 64, "num_heads": 4, "num_layers": 2, "d_ff": 256}  # the model train_recall builds


def answers_correct(model, inputs: Tensor, answers: Tensor, batch_size: int = 500) -> Tensor:
    """(N,) bool: whether the greedy prediction at the last position (the query) is the answer."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        pred = torch.cat([model(xb.to(device))[:, -1].argmax(-1).cpu() for xb in inputs.split(batch_size)])
    model.train(was_training)
    return pred == answers


def train_recall(task: AssociativeRecall, steps: int, seed: int = 0, batch_size: int = 64, lr: float = 1e-3,
                 eval_every: int = 100, n_eval: int = 500, device=None, desc: str = "", threads: int | None = 1,
                 **config):
    """Train a small GPT as a language model on ``task``'s sequences: next-token cross-entropy at
    every position (the causal mask is what keeps position t from reading token t + 1).

    ``config`` overrides :class:`~wmlib.transformer.GPTConfig` fields (default: ``RECALL_GPT``,
    2 layers, d_model 64, 4 heads, d_ff 256). The seed fixes the initialisation and the training
    stream; the curve is the accuracy on ``n_eval`` held-out sequences (drawn with seed ``10_000 + seed``) every
    ``eval_every`` steps. Returns ``(model, curve)`` with ``curve = [(step, accuracy), ...]``.

    ``threads``: torch's CPU threads while training (restored afterwards; None keeps the current
    setting). One by default: models this small gain nothing from a second thread, and on a busy
    machine the threads' synchronisation can cost several times the CPU time of the work itself.
    """
    if steps < 0 or eval_every < 1 or batch_size < 1:
        raise ValueError(f"need steps >= 0, eval_every >= 1 and batch_size >= 1; got {steps}, {eval_every}, {batch_size}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None or a positive int, got {threads!r}")
    device = torch.device("cpu") if device is None else torch.device(device)
    config = {**RECALL_GPT, **config}
    from .utils import torch_threads

    with torch_threads(threads):
        return _train(task, steps, seed, batch_size, lr, eval_every, n_eval, device, desc, config)


def _train(task, steps, seed, batch_size, lr, eval_every, n_eval, device, desc, config):
    from .transformer import GPT, GPTConfig
    from .utils import progress

    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=task.vocab_size, max_len=task.seq_len, **config)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    x_eval, y_eval = task.sample(n_eval, torch.Generator().manual_seed(10_000 + seed))
    curve = []
    for step in progress(range(steps + 1), desc=desc):
        if step % eval_every == 0 or step == steps:
            curve.append((step, answers_correct(model, x_eval, y_eval).float().mean().item()))
        if step == steps:
            break
        seq = task.sequences(batch_size, g).to(device)
        logits = model(seq[:, :-1])  # (B, L, V): a prediction at every position
        loss = F.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval(), curve


RECALL_TEST_SEED = 123_456  # held-out test sequences: the same problems for every seed and both formats


def recall_test_set(task: AssociativeRecall, n_test: int = 2000) -> tuple[Tensor, Tensor]:
    """The shared held-out test sequences of ``task``. Both formats draw the same keys, values and
    queries from the same seed, so their test items are the same problems, written two ways."""
    return task.sample(n_test, torch.Generator().manual_seed(RECALL_TEST_SEED))


def train_recall_seeds(task: AssociativeRecall, steps: int, seeds, n_test: int = 2000, log=None,
                       **train) -> list[dict]:
    """:func:`train_recall` once per seed, each model scored on :func:`recall_test_set`.

    Returns one dict per seed: ``seed``, ``model``, ``curve``, ``correct`` ((n_test,) bool) and
    ``cpu_seconds`` (the process's CPU time for training and scoring)."""
    import time

    x_test, y_test = recall_test_set(task, n_test)
    runs = []
    for seed in seeds:
        cpu = time.process_time()
        model, curve = train_recall(task, steps, seed=seed, **train)
        correct = answers_correct(model, x_test, y_test)
        runs.append({"seed": seed, "model": model, "curve": curve, "correct": correct,
                     "cpu_seconds": time.process_time() - cpu})
        if log is not None:
            log(f"  seed {seed}: test accuracy {correct.float().mean():.1%} after {steps} steps "
                f"({runs[-1]['cpu_seconds']:.0f} s CPU)")
    return runs
