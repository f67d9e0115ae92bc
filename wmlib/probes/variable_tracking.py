"""Variable tracking (RULER, Hsieh et al. 2024): follow a chain of assignments through filler text.

``VAR QKZTB = 52817`` then ``VAR HMWAX = VAR QKZTB``, ``VAR RPLDE = VAR HMWAX`` ... (``hops``
assignments after the first), one statement per line among filler sentences, in the order of
the chain. The question asks for every variable that holds the number; the answer lists them in
the order they were assigned. It needs *several* retrievals, each depending on the last: a model
that can copy one needle can still lose the chain. ``chains > 1`` adds other chains with other
numbers (distractors). As in RULER, the prompt starts with one short solved example.
"""

from __future__ import annotations

import random
import re
import string

from ._core import ProbeLM
from .needle import synthetic_sentences
from .tasks import Item, Task, fit_to_length, join_parts, last_user

__all__ = ["VariableTracking"]

_INSTRUCTION = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
_ASSIGN_RE = re.compile(r"VAR ([A-Z]+) = (?:VAR ([A-Z]+)|(\d+))")


def _question(value: str) -> str:
    return (f"Question: Find all variables that are assigned the value {value} in the text above. "
            "List them in the order they were assigned.")


def _prefix(n: int, value: str) -> str:
    return (f"Answer: According to the chain(s) of variable assignment in the text above, {n} variables are "
            f"assigned the value {value}, they are:")


def _chains(rng: random.Random, chains: int, hops: int, letters: int) -> list[tuple[str, list[str]]]:
    names: list[str] = []
    while len(names) < chains * (hops + 1):
        name = "".join(rng.choices(string.ascii_uppercase, k=letters))
        if name not in names:
            names.append(name)
    values = rng.sample(range(10_000, 100_000), chains)
    return [(str(values[c]), names[c * (hops + 1):(c + 1) * (hops + 1)]) for c in range(chains)]


def _statements(value: str, names: list[str]) -> list[str]:
    return [f"VAR {names[0]} = {value}"] + [f"VAR {b} = VAR {a}" for a, b in zip(names, names[1:])]


def _text(lines_at: list, hay: list[str], k: int) -> str:
    """``k`` filler lines with each statement inserted before filler line ``round(place * k)``."""
    slots: list[list[str]] = [[] for _ in range(k + 1)]
    for place, tie, line in sorted(lines_at):
        slots[round(place * k)].append(line)
    return "\n".join(x for i in range(k + 1) for x in slots[i] + (hay[i:i + 1] if i < k else []))


class VariableTracking(Task):
    name = "vt"
    description = "variable tracking: every variable a chain of assignments gives one number"
    group = "ruler"
    axes = ("length",)
    chance = 1e-12
    QUICK = dict(lengths=[512, 1024], limit=4, chains=1, hops=4)
    FULL = dict(lengths=[512, 1024], limit=20, chains=1, hops=4)

    def make_item(self, lm: ProbeLM, rng: random.Random, cell: dict, settings: dict) -> Item:
        length = cell["length"]
        chains, hops = settings.get("chains", 1), settings.get("hops", 4)
        if not (isinstance(chains, int) and isinstance(hops, int) and chains >= 1 and hops >= 1):
            raise ValueError(f"chains and hops must be positive ints, got {chains!r}, {hops!r}")
        # the solved example: short names, a short filler, the same format
        ex_value, ex_names = _chains(rng, 1, hops, 3)[0]
        ex_places = sorted(rng.random() for _ in ex_names)  # the statements stay in the chain's order
        ex_lines = [(p, i, s) for i, (p, s) in enumerate(zip(ex_places, _statements(ex_value, ex_names)))]
        example = (f"{_text(ex_lines, synthetic_sentences(rng, 3), 3)}\n{_question(ex_value)}\n"
                   f"{_prefix(len(ex_names), ex_value)}{join_parts(ex_names)[0]}\n\n")
        all_chains = _chains(rng, chains, hops, 5)
        value, names = all_chains[0]
        lines = []
        for c, (v, ns) in enumerate(all_chains):
            places = sorted(rng.random() for _ in ns)  # a chain's statements stay in order
            lines += [(p, (c, i), s) for i, (p, s) in enumerate(zip(places, _statements(v, ns)))]
        hay = synthetic_sentences(rng, max(64, length // 4))

        def build(k: int) -> str:
            if k > len(hay):
                return " " * (10 * length)
            return f"{_INSTRUCTION}{example}{_text(lines, hay, k)}\n{_question(value)}"

        k, user = fit_to_length(self.count(lm), build, length, f"{self.name} (length={length})")
        answer, parts = join_parts(names)
        return Item(self.name, 0, dict(cell), [{"role": "user", "content": user}], _prefix(len(names), value),
                    answer, parts, meta={"filler_lines": k, "user_tokens": lm.count_tokens(user)})

    def solve(self, messages: list) -> str:
        user = last_user(messages)
        asked = re.findall(r"Question: Find all variables that are assigned the value (\d+) in the text above", user)
        if not asked:
            raise ValueError("no variable-tracking question in the prompt")
        value = asked[-1]
        body = user[user.rindex(_prefix(0, "x")[:20]):] if _prefix(0, "x")[:20] in user else user
        holds: dict[str, str] = {}
        order: list[str] = []
        for name, src, number in _ASSIGN_RE.findall(body):
            holds[name] = number if number else holds.get(src, "")
            order.append(name)
        names = [n for n in order if holds[n] == value]
        return _prefix(len(names), value) + join_parts(names)[0]
