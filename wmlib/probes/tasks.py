"""What every probe task shares: items, prompts fitted to a length, and character-level scoring.

A **task** turns a grid of conditions (its *cells*: a context length and a depth, say) into
**items**: a conversation that ends with the start of the model's reply (``prefix``), and the
rest of the reply that is scored (``answer``). The parts of the answer that carry information
(the values, variables or words asked for) are marked by character spans, so that scoring never
depends on how a tokenizer splits the text:

- ``exact``: greedy decoding would write the whole answer (every answer token is the model's top
  choice given the correct ones before it; :meth:`ProbeLM.score_answers`);
- ``partial``: the fraction of the answer's parts written right (every character of the part) --
  RULER's ``string_match_all`` on a reply in a fixed order;
- ``chars``: the fraction of the parts' characters written right. Separators, quotes and the full
  stop that closes an answer are not parts: a model that only closes the quote scores 0.

Every item comes from a random generator seeded by the run seed, the task, the length and the
trial number (not the depth or position): the same document is probed at every depth, so depths
are compared on the same material (a paired design).

A task also knows how to answer its own prompts from the text alone (:meth:`Task.solve`): the
oracle model of :mod:`wmlib.probes.oracle` uses it to check that each task can score 1.0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ._core import ProbeLM

__all__ = ["Item", "Task", "TooShort", "item_rng", "fit_to_length", "render_conversation", "conversation_ids",
           "item_prompt_ids", "answer_char_spans", "score_item", "join_parts", "DEPTHS"]

DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class Item:
    """One probe trial.

    ``messages``: the conversation before the reply (``[{"role": "user", "content": ...}, ...]``);
    ``prefix``: the start of the reply, given to the model; ``answer``: the rest of the reply,
    scored; ``parts``: (start, end) character spans of ``answer`` that carry the answer;
    ``cell``: the item's condition (``{"length": 512, "depth": 0.25}``); ``meta``: what the
    generator did (actual depth, token count, ...), for the per-sample log.
    """

    task: str
    doc_id: int
    cell: dict
    messages: list
    prefix: str
    answer: str
    parts: list
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.answer:
            raise ValueError(f"{self.task}: an item needs a non-empty answer")
        if not self.parts:
            raise ValueError(f"{self.task}: an item needs at least one answer part")
        for a, b in self.parts:
            if not 0 <= a < b <= len(self.answer):
                raise ValueError(f"{self.task}: part ({a}, {b}) lies outside the answer {self.answer!r}")

    @property
    def part_texts(self) -> list[str]:
        return [self.answer[a:b] for a, b in self.parts]

    @property
    def user(self) -> str:
        """The text of the last user turn."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


def join_parts(values, sep: str = ", ", end: str = ".", lead: str = " ") -> tuple[str, list]:
    """``lead + sep.join(values) + end`` and the character spans of the values in it."""
    text, parts = lead, []
    for i, v in enumerate(values):
        if i:
            text += sep
        parts.append((len(text), len(text) + len(v)))
        text += v
    return text + end, parts


def item_rng(seed: int, task: str, length, trial: int) -> random.Random:
    """The random generator of one document: the same for every depth or position of a cell."""
    return random.Random(f"{seed}/{task}/{length}/{trial}")


class TooShort(ValueError):
    """A length cannot hold a task's instructions and question (the cell is skipped, not fatal)."""


def fit_to_length(count, build, target: int, what: str, start: int = 8, most: int = 1 << 16):
    """The largest ``k >= 0`` with ``count(build(k)) <= target``, and ``build(k)``.

    ``build(k)`` must give longer texts for larger ``k`` (k filler units). Raises ValueError when
    even ``k = 0`` (the task's instructions and question alone) exceeds ``target``.
    """
    if count(build(0)) > target:
        raise TooShort(f"{what}: length {target} is too short: the instructions and question alone take "
                         f"{count(build(0))} tokens; use a longer length")
    lo, hi = 0, start
    while count(build(hi)) <= target:  # grow until too long
        lo, hi = hi, hi * 2
        if hi > most:
            raise ValueError(f"{what}: could not reach {target} tokens with {most} filler units")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(build(mid)) <= target:
            lo = mid
        else:
            hi = mid
    return lo, build(lo)


# ----------------------------------------------------------------------------- prompts
def render_conversation(lm: ProbeLM, messages: list, prefix: str = "") -> str:
    """The conversation as the model reads it, ending with the start of the assistant's reply.

    One user turn goes through :meth:`ProbeLM.render` (the chat template when it is on, else
    ``text + newline + prefix``); several turns through the chat template, or, with the template
    off, as ``User: ...`` / ``Assistant: ...`` lines.
    """
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("a conversation must end with a user turn")
    if len(messages) == 1:
        return lm.render(messages[0]["content"], prefix)
    if lm.use_chat_template:
        head = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return head + prefix
    lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:" + (" " + prefix if prefix else "")


def conversation_ids(lm: ProbeLM, messages: list, prefix: str = "") -> list[int]:
    """Token ids of :func:`render_conversation` (special tokens as :meth:`ProbeLM.prompt_ids`)."""
    if len(messages) == 1:
        return lm.prompt_ids(messages[0]["content"], prefix)
    from .. import lm as lm_

    text = render_conversation(lm, messages, prefix)
    return lm_.encode(lm.tokenizer, text, prefix=not lm.use_chat_template)


def item_prompt_ids(lm: ProbeLM, item: Item) -> list[int]:
    return conversation_ids(lm, item.messages, item.prefix)


# ----------------------------------------------------------------------------- scoring
def answer_char_spans(lm: ProbeLM, answer: str, ids: list[int]) -> list[tuple[int, int]]:
    """The character span of ``answer`` covered by each of its tokens ``ids`` (contiguous, in order).

    From the tokenizer's offsets where it gives them, else from the lengths of decoded prefixes;
    if neither reproduces the answer, characters are shared out in proportion (a rare fallback).
    """
    from .. import lm as lm_

    n = len(answer)
    try:
        enc_ids, offsets = lm_.encode_with_offsets(lm.tokenizer, answer)
        if enc_ids == list(ids):
            ends = [e for _, e in offsets]
            if ends and ends[-1] == n and all(a <= b for a, b in zip(ends, ends[1:])):
                return [(s, e) for s, e in zip([0] + ends[:-1], ends)]
    except (NotImplementedError, TypeError, ValueError, KeyError):
        pass
    ends = [len(lm.tokenizer.decode(ids[:i + 1])) for i in range(len(ids))]
    if ends and ends[-1] == n and all(a <= b for a, b in zip(ends, ends[1:])):
        return [(s, e) for s, e in zip([0] + ends[:-1], ends)]
    cuts = [round(n * (i + 1) / len(ids)) for i in range(len(ids))]
    return [(s, e) for s, e in zip([0] + cuts[:-1], cuts)]


def score_item(lm: ProbeLM, item: Item, answer_ids: list[int], predicted, logprob: float) -> dict:
    """Exact, partial and character scores of one item from the model's greedy predictions
    (``predicted[i]``: its top token at answer position i, given the correct tokens before)."""
    right = [int(p) == int(a) for p, a in zip(predicted, answer_ids)]
    spans = answer_char_spans(lm, item.answer, answer_ids)
    char_ok = [False] * len(item.answer)
    for ok, (s, e) in zip(right, spans):
        for c in range(s, e):
            char_ok[c] = ok
    in_parts = [c for a, b in item.parts for c in range(a, b)]
    first_wrong = next((i for i, ok in enumerate(right) if not ok), None)
    wrote = answer_ids if first_wrong is None else list(answer_ids[:first_wrong]) + [int(predicted[first_wrong])]
    return {
        "exact": all(right),
        "partial": sum(all(char_ok[a:b]) for a, b in item.parts) / len(item.parts),
        "chars": sum(char_ok[c] for c in in_parts) / len(in_parts),
        "logprob": float(logprob),
        "greedy": lm.tokenizer.decode(wrote),  # what greedy decoding writes, up to its first mistake
    }


# ----------------------------------------------------------------------------- tasks
class Task:
    """A probe task: its cells, its item generator, its reference solver and its settings.

    Subclasses set ``name``, ``description``, ``axes`` (the cell keys, e.g. ``("length",
    "depth")``), ``QUICK`` and ``FULL`` (default settings, including ``limit``: documents per
    cell) and implement :meth:`make_item` and :meth:`solve`.
    """

    name = "task"
    description = ""
    version = "1"
    group = ""
    axes: tuple = ("length",)
    kind = "greedy"  # "greedy": one scored answer per item; "stream": n-back style, see n_back.py
    length_axis = "length"  # the axis whose longest passing value is the task's effective length
    chance = 0.0  # score of a model that ignores the context (exact match)
    QUICK: dict = {}
    FULL: dict = {}

    def settings(self, quick: bool = False, **overrides) -> dict:
        base = dict(self.QUICK if quick else self.FULL)
        unknown = set(overrides) - set(base)
        if unknown:
            raise ValueError(f"{self.name} has no setting(s) {sorted(unknown)}; its settings are {sorted(base)}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        if not isinstance(base.get("limit"), int) or base["limit"] < 1:
            raise ValueError(f"{self.name}: limit must be a positive int, got {base.get('limit')!r}")
        return base

    def prepare(self) -> None:
        """Load what the items need (a data set), so that a missing file stops a run before any scoring."""

    def cells(self, settings: dict) -> list[dict]:
        """The grid of conditions, e.g. every (length, depth)."""
        grid = [{}]
        for axis in self.axes:
            values = settings[axis + "s"] if axis + "s" in settings else settings[axis]
            grid = [{**g, axis: v} for g in grid for v in values]
        return grid

    def items(self, lm: ProbeLM, settings: dict, seed: int = 0, skipped: list | None = None) -> list[Item]:
        """Every cell's ``limit`` items. Cells whose length cannot hold the task's instructions are
        skipped (their conditions appended to ``skipped``); if every cell is, the error is raised."""
        out, too_short = [], None
        for cell in self.cells(settings):
            try:
                for trial in range(settings["limit"]):
                    rng = item_rng(seed, self.name, cell.get(self.axes[0]), trial)
                    item = self.make_item(lm, rng, cell, settings)
                    item.doc_id = trial
                    out.append(item)
            except TooShort as err:
                too_short = err
                if skipped is not None:
                    skipped.append(dict(cell))
        if not out and too_short is not None:
            raise too_short
        return out

    def make_item(self, lm: ProbeLM, rng: random.Random, cell: dict, settings: dict) -> Item:
        raise NotImplementedError

    def solve(self, messages: list) -> str:
        """The whole correct reply (prefix and answer) from the conversation alone."""
        raise NotImplementedError

    def count(self, lm: ProbeLM):
        """Tokens of a user text (the unit of ``length``)."""
        return lm.count_tokens

    def __repr__(self) -> str:
        return f"<task {self.name}: {self.description}>"


def last_user(messages: list) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")
