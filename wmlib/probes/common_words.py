"""Common-word extraction (RULER, Hsieh et al. 2024): which words occur most often in a long list?

A numbered list of words (``1. harbor 2. quietly 3. harbor ...``) in which ``common`` words occur
``frequency`` times each and the others once; the question asks for the common words. No single
place in the context holds the answer: the model must *aggregate* over the whole list, which
retrieval alone cannot do. The answer lists the common words in the order in which each first
appears (RULER accepts any order; a fixed order makes the answer one string that greedy decoding
can be scored on). As in RULER, the prompt starts with one short solved example. Words are drawn
from the vocabulary of SST-2 (``wmlib.data``).
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter

from ._core import ProbeLM
from .tasks import Item, Task, fit_to_length, join_parts, last_user

__all__ = ["CommonWords", "vocabulary"]

_HEAD = ("Below is a numbered list of words. In these words, some appear more often than others. "
         "Memorize the ones that appear most often.\n")
_Q_RE = re.compile(r"Question: What are the (\d+) most common words in the above list\?")


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Distinct lower-case words of 4 to 9 letters from SST-2, sorted."""
    from ..data import load_sst2

    words = {w for s in load_sst2("train").texts for w in s.split() if w.isalpha() and w.isascii() and 4 <= len(w) <= 9}
    return tuple(sorted(words))


def _question(n: int) -> str:
    return (f"Question: What are the {n} most common words in the above list? "
            "List them in the order in which each first appears.")


def _prefix(n: int) -> str:
    return f"Answer: The top {n} words that appear most often in the list are:"


def _listing(entries: list[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(entries))


def _first_order(entries: list[str], words) -> list[str]:
    seen: list[str] = []
    for w in entries:
        if w in words and w not in seen:
            seen.append(w)
    return seen


class CommonWords(Task):
    name = "cwe"
    description = "common-word extraction: the words that occur most often in a long numbered list"
    group = "ruler"
    axes = ("length",)
    chance = 1e-12
    QUICK = dict(lengths=[512, 1024], limit=4, common=5, frequency=6)
    FULL = dict(lengths=[512, 1024], limit=20, common=5, frequency=6)

    def prepare(self) -> None:
        vocabulary()

    def make_item(self, lm: ProbeLM, rng: random.Random, cell: dict, settings: dict) -> Item:
        length = cell["length"]
        n, freq = settings.get("common", 5), settings.get("frequency", 6)
        if not (isinstance(n, int) and isinstance(freq, int) and n >= 1 and freq >= 2):
            raise ValueError(f"common must be an int >= 1 and frequency an int >= 2, got {n!r}, {freq!r}")
        vocab = vocabulary()
        pool = rng.sample(vocab, n + max(64, length // 2) + 2 * n)
        ex_common, ex_rare, common, rare = pool[:n], pool[n:2 * n], pool[2 * n:3 * n], pool[3 * n:]
        ex_entries = ex_common * 3 + ex_rare
        rng.shuffle(ex_entries)
        example = (f"{_HEAD}{_listing(ex_entries)}\n{_question(n)}\n{_prefix(n)}"
                   f"{join_parts(_first_order(ex_entries, ex_common))[0]}\n\n")
        keyed = [(rng.random(), w) for w in common for _ in range(freq)]
        rare_keyed = [(rng.random(), w) for w in rare]

        def entries(k: int) -> list[str]:
            return [w for _, w in sorted(keyed + rare_keyed[:k])]

        def build(k: int) -> str:
            if k > len(rare_keyed):
                return " " * (10 * length)
            return f"{example}{_HEAD}{_listing(entries(k))}\n{_question(n)}"

        k, user = fit_to_length(self.count(lm), build, length, f"{self.name} (length={length})")
        answer, parts = join_parts(_first_order(entries(k), common))
        return Item(self.name, 0, dict(cell), [{"role": "user", "content": user}], _prefix(n), answer, parts,
                    meta={"rare_words": k, "entries": len(entries(k)), "user_tokens": lm.count_tokens(user)})

    def solve(self, messages: list) -> str:
        user = last_user(messages)
        asked = _Q_RE.findall(user)
        if not asked:
            raise ValueError("no common-words question in the prompt")
        n = int(asked[-1])
        listing = user[user.rindex(_HEAD) + len(_HEAD):user.rindex("\nQuestion:")]
        entries = re.findall(r"\d+\. ([a-z]+)", listing)
        top = {w for w, _ in Counter(entries).most_common(n)}
        return _prefix(n) + join_parts(_first_order(entries, top))[0]
