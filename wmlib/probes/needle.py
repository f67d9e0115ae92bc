"""Needle in a haystack, in the four variants of RULER (Hsieh et al. 2024).

A *needle* is a sentence ``One of the special magic numbers for <key> is: <7 digits>.`` hidden in
a *haystack* of filler text cut to a length in tokens; the question asks for the number(s) of one
or several keys. The variants:

- ``niah_single``: one needle; the question names its key;
- ``niah_multikey``: four needles with different keys; only one is asked for (the others are
  distractors: copying *a* number is not enough);
- ``niah_multivalue``: four needles with the same key; all four numbers are asked for, in the
  order they appear;
- ``niah_multiquery``: four needles with different keys; all four are asked for, in the order of
  the keys in the question.

Haystacks are ``synthetic`` (varied filler sentences from a small grammar, no digits) or
``natural`` (sentences of the SST-2 movie reviews, digit-free ones, from ``wmlib.data``).
``depth`` places the first asked-for needle (0 = before the first haystack sentence, 1 = after the
last); the other needles go to random places. The reply is started with the question's own words
(``The special magic number for <key> mentioned in the provided text is:``) and scored on the
numbers (:mod:`wmlib.probes.tasks`). A model that ignores the context is right with probability
about 1e-7 per number.
"""

from __future__ import annotations

import functools
import random
import re

from ._core import ProbeLM
from .tasks import Item, Task, fit_to_length, join_parts, last_user

__all__ = ["NeedleTask", "synthetic_sentences", "natural_sentences", "NEEDLE_TASKS"]

_OPENERS = ["", "", "", "In the spring, ", "Last year, ", "Every morning, ", "After the storm, ",
            "On most weekends, ", "Later that week, ", "By the end of the season, ", "Once again, "]
_SUBJECTS = ["the old bridge", "a local baker", "the town museum", "our neighbour", "the river ferry",
             "the night train", "a small committee", "the public library", "the school orchestra",
             "a young farmer", "the harbour master", "the garden club", "the village choir",
             "a travelling painter", "the weather station", "the corner cafe", "a retired teacher",
             "the football team", "the city council", "a group of students"]
_PREDICATES = ["was repainted a pale shade of green", "opened a second shop near the station",
               "moved its collection to the east wing", "planted rows of apple trees along the road",
               "reported a quiet and uneventful week", "welcomed visitors from the coast",
               "repaired the roof before the rains came", "published a short guide to the hills",
               "held a meeting about the new footpath", "sold bread and cakes at the market",
               "changed its timetable for the winter", "collected old photographs of the valley",
               "rehearsed a programme of folk songs", "cleaned the paths around the pond",
               "lent its hall to the chess society", "counted the birds on the marshes",
               "painted a mural on the library wall", "argued about the price of coal",
               "finished building a wooden boat", "invited everyone to a summer picnic"]
_ADJECTIVES = ["amber", "brave", "calm", "dusty", "eager", "fancy", "gentle", "hollow", "icy", "jolly",
               "kind", "lucky", "mellow", "noisy", "odd", "proud", "quiet", "rapid", "shiny", "tidy",
               "vivid", "warm", "young", "zesty", "bold", "crisp", "deep", "fair", "grand", "humble"]
_NOUNS = ["anchor", "basket", "candle", "dragon", "engine", "falcon", "garden", "harbor", "island", "jacket",
          "kettle", "ladder", "meadow", "needle", "orchard", "pencil", "quarry", "rocket", "saddle", "tunnel",
          "violin", "wagon", "yacht", "zebra", "bottle", "canyon", "forest", "glacier", "lantern", "mirror"]

NEEDLE = "One of the special magic numbers for {key} is: {value}."
_NEEDLE_RE = re.compile(r"One of the special magic numbers for ([a-z]+-[a-z]+) is: (\d+)\.")
_QUESTION_RE = re.compile(r"What (?:is the special magic number|are all the special magic numbers) for (.+?) "
                          r"mentioned in the provided text\?")


def synthetic_sentences(rng: random.Random, n: int) -> list[str]:
    """``n`` filler sentences from a small grammar (no digits, nothing about magic numbers)."""
    out = []
    for _ in range(n):
        text = f"{rng.choice(_OPENERS)}{rng.choice(_SUBJECTS)} {rng.choice(_PREDICATES)}."
        out.append(text[0].upper() + text[1:])
    return out


@functools.lru_cache(maxsize=1)
def _sst2_pool() -> tuple[str, ...]:
    from ..data import load_sst2

    keep = []
    for s in load_sst2("train").texts:
        words = s.split()
        if 8 <= len(words) <= 40 and s.isascii() and not re.search(r"\d|magic", s) and s.endswith((".", "!", "?")):
            keep.append(s)
    return tuple(sorted(set(keep)))  # sorted: the same pool whatever the file order


def natural_sentences(rng: random.Random, n: int) -> list[str]:
    """``n`` different digit-free sentences of SST-2 (movie reviews), in a random order."""
    pool = _sst2_pool()
    if n > len(pool):
        raise ValueError(f"the natural haystack has {len(pool)} sentences; {n} were asked for")
    return rng.sample(pool, n)


def _keys(rng: random.Random, n: int) -> list[str]:
    pairs = rng.sample([(a, b) for a in _ADJECTIVES for b in _NOUNS], n)
    return [f"{a}-{b}" for a, b in pairs]


def _values(rng: random.Random, n: int) -> list[str]:
    return [str(v) for v in rng.sample(range(1_000_000, 10_000_000), n)]


def _query(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]


def _question(keys: list[str], n_values: int, order: str) -> tuple[str, str]:
    """(question, reply prefix) for the numbers of ``keys``."""
    q = _query(keys)
    if n_values == 1:
        return (f"What is the special magic number for {q} mentioned in the provided text?",
                f"The special magic number for {q} mentioned in the provided text is:")
    how = {"text": " List them in the order they appear in the text, separated by commas.",
           "keys": " List them in the order of the keys in the question, separated by commas."}[order]
    return (f"What are all the special magic numbers for {q} mentioned in the provided text?{how}",
            f"The special magic numbers for {q} mentioned in the provided text are:")


class NeedleTask(Task):
    """RULER's needle in a haystack: ``keys`` needles with different keys, ``values`` needles per key,
    ``queries`` of the keys asked for."""

    axes = ("length", "depth")
    group = "needle"
    chance = 1e-7
    QUICK = dict(lengths=[256, 512], depths=[0.0, 0.5, 1.0], limit=2)
    FULL = dict(lengths=[256, 512, 1024], depths=[0.0, 0.5, 1.0], limit=8)

    def __init__(self, name: str, keys: int = 1, values: int = 1, queries: int = 1, haystack: str = "synthetic",
                 description: str = ""):
        if haystack not in ("synthetic", "natural"):
            raise ValueError(f"haystack must be 'synthetic' or 'natural', got {haystack!r}")
        if not (1 <= queries <= keys and values >= 1):
            raise ValueError(f"need 1 <= queries <= keys and values >= 1; got keys={keys}, values={values}, "
                             f"queries={queries}")
        self.name, self.keys, self.values, self.queries, self.haystack = name, keys, values, queries, haystack
        self.description = description

    def make_item(self, lm: ProbeLM, rng: random.Random, cell: dict, settings: dict) -> Item:
        length, depth = cell["length"], cell["depth"]
        if not 0.0 <= depth <= 1.0:
            raise ValueError(f"depth must be in [0, 1], got {depth}")
        keys = _keys(rng, self.keys)
        values = {k: _values(rng, self.values) for k in keys}
        asked = keys[:self.queries]  # keys are in random order already
        # every needle: (place as a fraction of the haystack, tie-break, text); the first asked-for
        # needle goes to `depth`, the others to random places
        needles = []
        for i, (k, vs) in enumerate((k, values[k]) for k in keys):
            for j, v in enumerate(vs):
                where = depth if (i, j) == (0, 0) else rng.random()
                needles.append((where, (i, j) != (0, 0), rng.random(), k, v))
        pool_size = max(64, length // 4)  # more sentences than can fit (a sentence has > 4 tokens)
        hay = (natural_sentences if self.haystack == "natural" else synthetic_sentences)(rng, pool_size)
        order = "text" if self.values > 1 else "keys"
        question, prefix = _question(asked, self.values * self.queries, order)
        head = ("Some special magic numbers are hidden within the following text. Make sure to memorize them. "
                "I will quiz you about the numbers afterwards.\n")

        def build(k: int) -> str:
            if k > len(hay):
                return head + " " * (10 * length)  # beyond the pool: "too long", ends the search
            slots: list[list] = [[] for _ in range(k + 1)]
            for where, rest, tie, key, v in sorted(needles, key=lambda x: (x[0], x[1], x[2])):
                slots[round(where * k)].append(NEEDLE.format(key=key, value=v))
            doc = " ".join(x for i in range(k + 1) for x in slots[i] + (hay[i:i + 1] if i < k else []))
            return f"{head}{doc}\n{question}"

        k, user = fit_to_length(self.count(lm), build, length, f"{self.name} (length={length})")
        doc = user[len(head):-len(question) - 1]
        in_doc = _NEEDLE_RE.findall(doc)
        if order == "text":
            answer_values = [v for key, v in in_doc if key == asked[0]]
        else:
            answer_values = [v for key in asked for v in values[key]]
        answer, parts = join_parts(answer_values)
        first = doc.index(NEEDLE.format(key=asked[0], value=values[asked[0]][0]))
        return Item(self.name, 0, dict(cell), [{"role": "user", "content": user}], prefix, answer, parts,
                    meta={"haystack_sentences": k, "needle_slot": round(depth * k), "needles": len(in_doc),
                          "needle_char_depth": first / len(doc),
                          "user_tokens": lm.count_tokens(user)})

    def prepare(self) -> None:
        if self.haystack == "natural":
            _sst2_pool()

    def solve(self, messages: list) -> str:
        user = last_user(messages)
        m = _QUESTION_RE.search(user)
        if m is None:
            raise ValueError("no needle question in the prompt")
        keys = re.split(r", | and ", m.group(1))
        needles = _NEEDLE_RE.findall(user)
        found = [[v for k, v in needles if k == key] for key in keys]
        if any(not f for f in found):
            raise ValueError("a key asked for has no needle in the text")
        values = [v for f in found for v in f]
        _, prefix = _question(keys, len(values), "text")
        return prefix + join_parts(values)[0]


NEEDLE_TASKS = [
    NeedleTask("niah_single", description="one needle in a synthetic haystack"),
    NeedleTask("niah_single_natural", haystack="natural", description="one needle in natural text (SST-2 sentences)"),
    NeedleTask("niah_multikey", keys=4, haystack="natural",
               description="one needle asked for among 4 with different keys"),
    NeedleTask("niah_multivalue", values=4, haystack="natural",
               description="all 4 numbers of one key, in the order of the text"),
    NeedleTask("niah_multiquery", keys=4, queries=4, haystack="natural",
               description="the numbers of 4 keys, in the order asked"),
]
