"""What every probe shares: prompts through the chat template, the context limit, batched scoring.

Two ways of reading an answer off a language model, both one forward pass per prompt:

- :meth:`ProbeLM.score_answers` appends the correct answer to the prompt and checks, token by
  token, whether it is the model's top prediction (*greedy match*). Under teacher forcing on the
  correct prefix this is exactly what greedy decoding would produce, so the score equals
  "``model.generate(do_sample=False)`` writes the answer" -- without a generation loop, and with
  the log-likelihood of the answer for free.
- :meth:`ProbeLM.choose` compares the log-probabilities of a few candidate answers (``yes`` /
  ``no``) after the prompt: a forced choice, which keeps a small model from losing points on the
  *format* of a free answer and gives a continuous margin for threshold-free scores (ROC AUC).

Prompts are left-padded into batches (so that every answer ends at the same column) with position
ids counted from the first real token, and batches are sized by a token budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from .. import lm

__all__ = [
    "ContextTooLong", "ProbeLM", "ProbeResult", "AnswerScore",
    "binary_scores", "roc_auc", "check_scores_in_unit_interval", "format_scores",
]


class ContextTooLong(ValueError):
    """A probe setting needs more tokens than the model (or the ``max_context`` cap) allows."""


@dataclass(frozen=True)
class AnswerScore:
    """How the model did on one (prompt, answer) pair.

    ``correct``: every answer token was the model's top (greedy) prediction.
    ``token_accuracy``: the fraction of answer tokens that were.
    ``logprob``: the summed log-probability of the answer given the prompt (nats).
    ``predicted``: the model's top token at each answer position, given the correct tokens before
    it (its first token is what greedy decoding writes first).
    """

    correct: bool
    token_accuracy: float
    logprob: float
    predicted: tuple = ()


@dataclass
class ProbeResult:
    """The outcome of one probe run; ``scores`` (possibly nested dicts) holds numbers in [0, 1].

    ``summary`` holds headline numbers that need not lie in [0, 1] (a digit span, say),
    ``settings`` what was run, ``examples`` a few prompts and answers to read.
    """

    probe: str
    model: str
    scores: dict
    summary: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    chance: dict = field(default_factory=dict)
    seconds: float = 0.0
    examples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, path=None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text


def check_scores_in_unit_interval(scores, where: str = "scores") -> None:
    """Raise ValueError unless every leaf of the nested dict ``scores`` is a number in [0, 1]."""
    if isinstance(scores, dict):
        if not scores:
            raise ValueError(f"{where} is an empty dict")
        for key, value in scores.items():
            check_scores_in_unit_interval(value, f"{where}[{key!r}]")
        return
    if isinstance(scores, bool) or not isinstance(scores, (int, float)):
        raise ValueError(f"{where} should be a number, got {type(scores).__name__}: {scores!r}")
    if not (0.0 <= float(scores) <= 1.0) or math.isnan(float(scores)):
        raise ValueError(f"{where} = {scores!r} is outside [0, 1]")


def roc_auc(margins: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``margins`` as a score for ``labels`` (ties count one half).

    The probability that a random positive gets a higher margin than a random negative: 0.5 is
    chance whatever the model's bias, 1 a perfect ranking. Needs both classes.
    """
    pos = [m for m, y in zip(margins, labels) if y]
    neg = [m for m, y in zip(margins, labels) if not y]
    if len(margins) != len(labels):
        raise ValueError(f"{len(margins)} margins but {len(labels)} labels")
    if not pos or not neg:
        raise ValueError("roc_auc needs at least one positive and one negative label")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def binary_scores(predictions: Sequence[bool], labels: Sequence[bool]) -> dict[str, float]:
    """Accuracy and its chance-aware relatives for yes/no decisions (all in [0, 1]).

    - ``accuracy``: fraction right. Its chance level depends on the base rate and the model's bias.
    - ``balanced_accuracy``: mean of the hit rate and the correct-rejection rate; 0.5 for any
      strategy that ignores the input (always "yes", always "no", coin flips).
    - ``f1``: of the positive ("match") class; 0 when the model never says yes.
    - ``hit_rate`` (true-positive rate) and ``false_alarm_rate`` (false-positive rate), the two
      numbers of signal-detection theory.
    - ``discrimination``: max(0, hit rate - false-alarm rate), chance-corrected: 0 at chance.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        raise ValueError("no trials to score")
    tp = sum(bool(p) and bool(y) for p, y in zip(predictions, labels))
    fp = sum(bool(p) and not y for p, y in zip(predictions, labels))
    fn = sum((not p) and bool(y) for p, y in zip(predictions, labels))
    tn = sum((not p) and (not y) for p, y in zip(predictions, labels))
    pos, neg = tp + fn, fp + tn
    hit = tp / pos if pos else 0.0
    fa = fp / neg if neg else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    balanced = (hit + (1 - fa)) / 2 if pos and neg else (tp + tn) / len(labels)
    return {
        "accuracy": (tp + tn) / len(labels),
        "balanced_accuracy": balanced,
        "f1": f1,
        "hit_rate": hit,
        "false_alarm_rate": fa,
        "discrimination": max(0.0, hit - fa),
    }


class ProbeLM:
    """A causal LM and its tokenizer, packaged for probing.

    ``use_chat_template``: ``"auto"`` (the default) wraps each prompt as one user turn of the
    tokenizer's chat template when it has one -- instruction-tuned models such as
    SmolLM2-135M-Instruct were trained on that format and answer far more reliably in it --
    and writes plain ``text + newline + answer prefix`` otherwise. ``max_context`` caps the
    number of tokens per prompt below the model's own limit (``config.max_position_embeddings``).
    ``batch_tokens`` bounds the tokens (padding included) per forward pass; ``max_batch`` the
    prompts per pass.
    """

    def __init__(self, model, tokenizer, name: str = "model", device=None, max_context: int | None = None,
                 use_chat_template: str | bool = "auto", batch_tokens: int | None = None, max_batch: int = 32):
        if tokenizer is None or not callable(tokenizer):
            raise TypeError(f"tokenizer must be a Hugging Face tokenizer, got {type(tokenizer).__name__}")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        if next(model.parameters()).device != self.device:
            self.model.to(self.device)
        model_limit = lm.context_limit(model)
        if max_context is not None and (not isinstance(max_context, int) or max_context < 1):
            raise ValueError(f"max_context must be a positive int, got {max_context!r}")
        if max_context is not None and model_limit is not None and max_context > model_limit:
            raise ContextTooLong(
                f"max_context={max_context} exceeds the model's own limit of {model_limit} tokens "
                f"(config.max_position_embeddings of {name}); use at most {model_limit}."
            )
        self.model_limit = model_limit
        self.context_limit = max_context or model_limit
        self.limit_source = ("the --max-context cap" if max_context else
                             f"{name}'s config.max_position_embeddings")
        if use_chat_template == "auto" or isinstance(use_chat_template, str):
            self.use_chat_template = lm.uses_chat_template(tokenizer, use_chat_template)
        else:
            try:
                self.use_chat_template = lm.uses_chat_template(tokenizer, bool(use_chat_template))
            except ValueError:
                raise ValueError(f"use_chat_template=True but the tokenizer of {name} has no chat template; "
                                 "pass use_chat_template='auto' or False") from None
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise ValueError("the tokenizer has neither a pad token nor an end-of-sequence token to pad with")
            tokenizer.pad_token = tokenizer.eos_token
        if batch_tokens is None:
            batch_tokens = 65536 if self.device.type == "cuda" else 8192
        if batch_tokens < 1 or max_batch < 1:
            raise ValueError(f"batch_tokens and max_batch must be positive, got {batch_tokens}, {max_batch}")
        self.batch_tokens, self.max_batch = batch_tokens, max_batch
        model.eval()

    @classmethod
    def load(cls, name: str = "smollm2-135m", device=None, **kwargs) -> "ProbeLM":
        """Load a ``wmlib.models`` name or hub id with :func:`wmlib.models.load_causal_lm`."""
        from ..models import load_causal_lm
        from ..utils import get_device

        device = get_device(device if device is not None else "auto")
        model, tok = load_causal_lm(name, device=device)
        return cls(model, tok, name=name, device=device, **kwargs)

    # ------------------------------------------------------------------ prompts
    def encode(self, text: str) -> list[int]:
        """Token ids of plain text, no special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def render(self, user: str, assistant_prefix: str = "") -> str:
        """The prompt as text: ``user`` as one user turn, then the start of the model's reply."""
        return lm.render_prompt(self.tokenizer, user, assistant_prefix, self.use_chat_template)

    def prompt_ids(self, user: str, assistant_prefix: str = "") -> list[int]:
        """Token ids of :meth:`render` (the template brings its own special tokens; plain text gets
        the tokenizer's own special-token prefix, e.g. a beginning-of-sequence token)."""
        return lm.encode_prompt(self.tokenizer, user, assistant_prefix, self.use_chat_template)

    def check_fits(self, n_tokens: int, what: str) -> None:
        """Raise :class:`ContextTooLong` if a prompt of ``n_tokens`` does not fit."""
        if self.context_limit is not None and n_tokens > self.context_limit:
            raise ContextTooLong(
                f"{what} needs {n_tokens} tokens, more than the {self.context_limit} allowed by "
                f"{self.limit_source}. Use a shorter setting (e.g. fewer pairs or a smaller context "
                "length) or a model with a longer context."
            )

    # ------------------------------------------------------------------ scoring
    def score_answers(self, prompts: Sequence[list[int]], answers: Sequence[list[int]], desc: str = "scoring",
                      what: str = "a prompt") -> list[AnswerScore]:
        """Greedy match and log-likelihood of each ``answers[i]`` (token ids) after ``prompts[i]``
        (:func:`wmlib.lm.score_continuations`)."""
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        for p, a in zip(prompts, answers):
            if not a:
                raise ValueError("an answer has no tokens")
            self.check_fits(len(p) + len(a), what)
        s = lm.score_continuations(self.model, prompts, answers, pad_token_id=self.tokenizer.pad_token_id,
                                   batch_tokens=self.batch_tokens, max_batch=self.max_batch, desc=desc)
        return [AnswerScore(correct=bool(s.greedy[i]), token_accuracy=float(s.token_accuracy[i]),
                            logprob=float(s.logprob[i]), predicted=tuple(s.predicted[i])) for i in range(len(answers))]

    def choose(self, prompts: Sequence[list[int]], candidates: Sequence, desc: str = "scoring",
               what: str = "a prompt") -> torch.Tensor:
        """Log-probability of each candidate answer after each prompt: ``(N, C)`` float.

        A candidate is a string or a list of spellings of the same answer (``[" yes", " Yes"]``),
        whose probabilities are added. When every spelling is one token, one forward pass per
        prompt scores them all; otherwise each spelling is scored as a whole answer.
        """
        groups = [[c] if isinstance(c, str) else list(c) for c in candidates]
        if len(groups) < 2 or any(not g for g in groups):
            raise ValueError(f"need at least two non-empty candidates, got {list(candidates)}")
        ids = [[self.encode(s) for s in g] for g in groups]
        flat = [tuple(i) for g in ids for i in g]
        if any(not i for i in flat):
            raise ValueError(f"a candidate encodes to no tokens: {list(candidates)}")
        if len(set(flat)) < len(flat):
            raise ValueError(f"two candidates encode to the same tokens: {list(candidates)}")
        out = torch.empty(len(prompts), len(groups))
        if all(len(i) == 1 for i in flat):
            for p in prompts:
                self.check_fits(len(p) + 1, what)
            logp = lm.next_token_logprobs(self.model, prompts, pad_token_id=self.tokenizer.pad_token_id,
                                          token_ids=[i[0] for i in flat], batch_tokens=self.batch_tokens,
                                          max_batch=self.max_batch, desc=desc)
            start = 0
            for c, g in enumerate(ids):
                out[:, c] = torch.logsumexp(logp[:, start:start + len(g)], dim=-1)
                start += len(g)
            return out
        spellings = [i for g in ids for i in g]
        scores = self.score_answers([p for p in prompts for _ in spellings], [a for _ in prompts for a in spellings],
                                    desc=desc, what=what)
        lp = torch.tensor([s.logprob for s in scores]).view(len(prompts), len(spellings))
        start = 0
        for c, g in enumerate(ids):
            out[:, c] = torch.logsumexp(lp[:, start:start + len(g)], dim=-1)
            start += len(g)
        return out

    def generate(self, user: str, assistant_prefix: str = "", max_new_tokens: int = 20) -> str:
        """Greedy continuation of one prompt, as text (to read what the model actually writes)."""
        ids = self.prompt_ids(user, assistant_prefix)
        self.check_fits(len(ids) + max_new_tokens, "this prompt")
        new = lm.greedy_generate(self.model, [ids], max_new_tokens, tokenizer=self.tokenizer)[0]
        return self.tokenizer.decode(new, skip_special_tokens=True)


def format_scores(scores: dict, title: str = "", digits: int = 2) -> str:
    """Nested scores as plain-text tables: a dict of dicts of numbers becomes one table (rows =
    outer keys, columns = inner keys); one more level of nesting gives one table per outer key."""
    if not isinstance(scores, dict) or not scores:
        raise ValueError(f"scores must be a non-empty dict, got {scores!r}")
    values = list(scores.values())
    if all(isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()) for v in values):
        return "\n\n".join(format_scores(v, f"{title} {k}".strip(), digits) for k, v in scores.items())
    if all(not isinstance(v, dict) for v in values):
        width = max(len(str(k)) for k in scores)
        lines = [f"{k!s:>{width}}  {v:.{digits}f}" for k, v in scores.items()]
        return "\n".join(([title] if title else []) + lines)
    if not all(isinstance(v, dict) for v in values):
        raise ValueError("scores mix numbers and tables at the same level")
    cols: list[str] = []
    for row in values:
        cols += [str(c) for c in row if str(c) not in cols]
    first = max([len(str(k)) for k in scores] + [len(title)])
    widths = [max(len(c), digits + 2) for c in cols]
    head = f"{title:<{first}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cols, widths))
    lines = [head, "-" * len(head)]
    for key, row in scores.items():
        row = {str(c): v for c, v in row.items()}
        cells = [f"{row[c]:>{w}.{digits}f}" if c in row else " " * w for c, w in zip(cols, widths)]
        lines.append(f"{key!s:>{first}}  " + "  ".join(cells))
    return "\n".join(lines)
