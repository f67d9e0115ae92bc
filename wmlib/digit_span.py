"""A digit-span test for a causal language model, in two conditions (Chapter 1).

- **copy**: the digits stand on the line just above the answer (``Digits: 0631958`` then
  ``Repeat:``), so the model can read them off as it writes: a person copying from a visible sheet
  has no span limit at all, so this is *not* the task of the human digit span;
- **recall**: a filler text stands between the digits and the request (``Digits: 0631958``, a few
  sentences, then ``Repeat:``), as the list is gone when a person is asked for it. The digits are
  still in the model's context (nothing there fades), but no longer next to the answer: the model
  must find them back across the filler.

Each prompt has two worked examples in the same format. Answers come from greedy decoding
(:func:`wmlib.lm.greedy_generate`, a neutral generation config) and are read *as text*: the first
line of the reply, its digits only, so that a tokenizer that writes several digits per token or puts
no BOS first changes nothing. The digits are located in the prompt by character offsets
(:func:`wmlib.lm.encode_with_offsets`), never by counting tokens.

Scoring: ``exact`` (the whole sequence right) and an alignment: the optimal-string-alignment edit
distance (Levenshtein plus adjacent swaps), whose operations name the errors: omissions,
insertions, substitutions and transpositions. A dropped digit costs one omission instead of a wrong
tail, as position-by-position scoring would count it. :func:`classify_failure` sorts failed trials
into kinds (a worked example intrudes, a loop, one slip, several errors, no digits).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from . import lm
from .probes.digit_span import digit_sequence

__all__ = [
    "CONDITIONS", "DEMOS", "FAILURE_KINDS", "SpanPrompt", "SpanTrial", "span_prompt", "answer_digits", "align",
    "edit_distance", "similarity", "error_counts", "classify_failure", "run_trials",
]

CONDITIONS = ("copy", "recall")
DEMOS = ("729", "41853")  # the two worked examples of every prompt
INSTRUCTION = {"copy": "Repeat the digits exactly.",
               "recall": "Remember the digits. After the text, repeat them exactly."}
FAILURE_KINDS = ("no digits", "a worked example intrudes", "a loop", "one slip", "several errors")
_OPS = ("omission", "insertion", "substitution", "transposition")


def _check_digits(s, name: str) -> str:
    if not isinstance(s, str):
        raise TypeError(f"{name} must be a str of digits, got {type(s).__name__}: {s!r}")
    if not re.fullmatch(r"\d*", s):
        raise ValueError(f"{name} must contain digits only, got {s!r}")
    return s


@dataclass(frozen=True)
class SpanPrompt:
    """A rendered prompt: ``text``, its token ``ids``, and where the target digits are, in characters
    (``digit_chars``) and in tokens (``digit_tokens``, ``[first, last)``)."""

    text: str
    ids: list
    digit_chars: tuple
    digit_tokens: tuple

    @property
    def distance(self) -> int:
        """Tokens from the end of the target digits to the end of the prompt (where the answer starts)."""
        return len(self.ids) - self.digit_tokens[1]


def span_prompt(tokenizer, digits: str, condition: str, fillers: Sequence[str] = (),
                chat_template: str | bool = "off") -> SpanPrompt:
    """The prompt for ``digits`` in ``condition`` (``"copy"`` or ``"recall"``).

    ``fillers``: for ``"recall"``, three texts without digits (one after each worked example and one
    after the target); unused for ``"copy"``. ``chat_template``: the policy of
    :func:`wmlib.lm.encode_prompt` (the instruction, examples and target as the user turn, ``Repeat:``
    as the start of the reply).
    """
    digits = _check_digits(digits, "digits")
    if not digits:
        raise ValueError("digits is empty: a span trial needs at least one digit")
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    if condition == "recall":
        if isinstance(fillers, str) or len(fillers) != len(DEMOS) + 1:
            raise ValueError(f"the recall condition needs {len(DEMOS) + 1} filler texts, got {fillers!r}")
        for f in fillers:
            if not isinstance(f, str) or not f.strip() or re.search(r"\d", f):
                raise ValueError(f"a filler must be a non-empty text without digits, got {f!r}")
        gaps = [f"{f.strip()}\n" for f in fillers]
    else:
        gaps = [""] * (len(DEMOS) + 1)
    frame = "".join(f"Digits: {d}\n{g}Repeat: {d}\n" for d, g in zip(DEMOS, gaps))
    user = f"{INSTRUCTION[condition]}\n{frame}Digits: {digits}\n{gaps[-1]}".rstrip("\n")
    text = lm.render_prompt(tokenizer, user, "Repeat:", chat_template)
    ids = lm.encode_prompt(tokenizer, user, "Repeat:", chat_template)
    start = text.rindex(f"Digits: {digits}") + len("Digits: ")
    chars = (start, start + len(digits))
    # locate by characters in the text the ids encode (a special prefix, if any, comes first)
    body, offsets = lm.encode_with_offsets(tokenizer, text)
    shift = len(ids) - len(body)
    if shift < 0 or ids[shift:] != body:
        raise RuntimeError("the prompt's ids are not its text's tokens after a special prefix; "
                           "cannot locate the digits by characters")
    first, last = lm.token_span(offsets, *chars)
    return SpanPrompt(text, ids, chars, (first + shift, last + shift))


def answer_digits(reply: str) -> str:
    """The digits of the first non-empty line of a reply (spaces, commas and other text dropped)."""
    if not isinstance(reply, str):
        raise TypeError(f"reply must be a str, got {type(reply).__name__}")
    line = next((ln for ln in reply.split("\n") if ln.strip()), "")
    return "".join(re.findall(r"\d", line))


def align(target: str, answer: str) -> list[tuple[str, str, str]]:
    """An optimal alignment of ``answer`` to ``target``: a list of ``(op, target_part, answer_part)``
    with ``op`` in ``match``, ``substitution``, ``omission`` (a target digit missing),
    ``insertion`` (an extra digit) and ``transposition`` (two neighbours swapped).

    Optimal string alignment (Levenshtein distance with adjacent transpositions, each operation
    costing 1); ties are broken towards matches, then substitutions.
    """
    t, a = _check_digits(target, "target"), _check_digits(answer, "answer")
    n, m = len(t), len(a)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best = min(d[i - 1][j - 1] + (t[i - 1] != a[j - 1]), d[i - 1][j] + 1, d[i][j - 1] + 1)
            if i > 1 and j > 1 and t[i - 1] == a[j - 2] and t[i - 2] == a[j - 1] and t[i - 1] != t[i - 2]:
                best = min(best, d[i - 2][j - 2] + 1)
            d[i][j] = best
    ops, i, j = [], n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (t[i - 1] != a[j - 1]):
            ops.append(("match" if t[i - 1] == a[j - 1] else "substitution", t[i - 1], a[j - 1]))
            i, j = i - 1, j - 1
        elif (i > 1 and j > 1 and t[i - 1] == a[j - 2] and t[i - 2] == a[j - 1] and t[i - 1] != t[i - 2]
              and d[i][j] == d[i - 2][j - 2] + 1):
            ops.append(("transposition", t[i - 2:i], a[j - 2:j]))
            i, j = i - 2, j - 2
        elif i and d[i][j] == d[i - 1][j] + 1:
            ops.append(("omission", t[i - 1], ""))
            i -= 1
        else:
            ops.append(("insertion", "", a[j - 1]))
            j -= 1
    return ops[::-1]


def edit_distance(target: str, answer: str) -> int:
    """The number of edits (omissions, insertions, substitutions, adjacent swaps) from target to answer."""
    return sum(op != "match" for op, _, _ in align(target, answer))


def similarity(target: str, answer: str) -> float:
    """``1 - edit_distance / max(len(target), len(answer))``: 1 for a perfect answer, 0 for nothing in common."""
    _check_digits(target, "target"), _check_digits(answer, "answer")
    if not target:
        raise ValueError("target is empty")
    return 1.0 - edit_distance(target, answer) / max(len(target), len(answer))


def error_counts(target: str, answer: str) -> Counter:
    """How many omissions, insertions, substitutions and transpositions the alignment needs."""
    c = Counter(op for op, _, _ in align(target, answer) if op != "match")
    return Counter({k: c.get(k, 0) for k in _OPS})


def classify_failure(target: str, answer: str, demos: Sequence[str] = DEMOS) -> str | None:
    """The kind of a failed trial (``None`` if the answer is right), the first that applies, in the
    order of :data:`FAILURE_KINDS`: no digits; a worked example intrudes (the answer starts with a
    worked example's digits and the target does not); a loop (at least 8 digits, the last 8 with at
    most 2 distinct values, and the target's last 8 not); one slip (edit distance 1); several errors."""
    _check_digits(target, "target"), _check_digits(answer, "answer")
    if answer == target:
        return None
    if not answer:
        return "no digits"
    if any(answer.startswith(d) and not target.startswith(d) for d in demos):
        return "a worked example intrudes"
    if len(answer) >= 8 and len(set(answer[-8:])) <= 2 and len(set(target[-8:])) > 2:
        return "a loop"
    return "one slip" if edit_distance(target, answer) == 1 else "several errors"


@dataclass
class SpanTrial:
    """One trial: the ``target`` digits, the model's ``answer`` digits and its raw ``reply``."""

    condition: str
    length: int
    target: str
    reply: str
    prompt_tokens: int
    distance: int  # tokens between the target digits and the answer
    answer: str = field(init=False)

    def __post_init__(self):
        self.answer = answer_digits(self.reply)

    @property
    def exact(self) -> bool:
        return self.answer == self.target

    @property
    def similarity(self) -> float:
        return similarity(self.target, self.answer)

    @property
    def first_digit_wrong(self) -> bool:
        return not self.answer or self.answer[0] != self.target[0]

    @property
    def kind(self) -> str | None:
        return classify_failure(self.target, self.answer)


def run_trials(model, tokenizer, lengths: Sequence[int], n_trials: int, conditions: Sequence[str] = CONDITIONS,
               filler_sentences: Sequence[str] = (), filler_size: int = 2, chat_template: str | bool = "off",
               seed: int = 0, max_batch: int = 16) -> list[SpanTrial]:
    """``n_trials`` digit strings of each length (no digit repeated back to back), each asked in
    every condition (the same strings, so the conditions are paired trial by trial), answered by
    greedy decoding in batches. The fillers of a recall trial are ``filler_size`` sentences drawn
    from ``filler_sentences``. Deterministic given ``seed``."""
    for n in lengths:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"lengths must be positive ints, got {n!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad or not conditions:
        raise ValueError(f"conditions must be a non-empty subset of {CONDITIONS}, got {conditions!r}")
    if "recall" in conditions:
        pool = [s.strip() for s in filler_sentences if isinstance(s, str) and s.strip() and not re.search(r"\d", s)]
        if len(pool) < filler_size or filler_size < 1:
            raise ValueError(f"the recall condition needs at least filler_size={filler_size} (>= 1) filler "
                             f"sentences without digits, got {len(pool)}")
    rng = random.Random(seed)
    jobs = []
    for n in lengths:
        for _ in range(n_trials):
            target = "".join(map(str, digit_sequence(n, rng)))
            fillers = [" ".join(rng.sample(pool, filler_size)) for _ in range(len(DEMOS) + 1)] \
                if "recall" in conditions else ()
            for c in conditions:
                jobs.append((c, n, target, span_prompt(tokenizer, target, c, fillers, chat_template)))
    newline = lm.encode(tokenizer, "\n", prefix=False)
    stop = newline if len(newline) == 1 else ()
    trials = [None] * len(jobs)
    for n in sorted(set(lengths)):  # one length at a time: max_new_tokens follows the length
        idx = [i for i, j in enumerate(jobs) if j[1] == n]
        out = lm.greedy_generate(model, [jobs[i][3].ids for i in idx], max_new_tokens=n + 3, tokenizer=tokenizer,
                                 stop_token_ids=stop, max_batch=max_batch)
        for i, toks in zip(idx, out):
            c, _, target, p = jobs[i]
            reply = tokenizer.decode(toks, skip_special_tokens=True)
            trials[i] = SpanTrial(c, n, target, reply, len(p.ids), p.distance)
    return trials
