"""Lost in the middle (Liu et al. 2024): does retrieval depend on *where* the answer sits?

The synthetic key-value task of the paper: a JSON object of random hexadecimal keys and values,
then one of the keys; the model must return its value. Nothing can be known in advance, so the
answer must be read from the context. Liu et al. found a U-shaped curve for many models: best
when the pair is first or last, worst in the middle.

The object is filled with pairs up to ``length`` tokens; ``position`` places the queried pair
(0 = first pair, 1 = last). Each document is drawn once per (length, trial) and the queried pair
is moved through every position with the other pairs in the same order, so positions are
compared on identical material. The reply is started with
``The value corresponding to the key "<key>" is "`` and only the value's characters are scored
(the closing quote, which any model predicts, is not).
"""

from __future__ import annotations

import json
import random
import re

from ._core import ProbeLM
from .tasks import DEPTHS, Item, Task, fit_to_length, last_user

__all__ = ["random_id", "kv_user", "LostInTheMiddle"]

_HEX = "0123456789abcdef"


def random_id(rng: random.Random, length: int = 36) -> str:
    """A random lowercase-hex identifier: ``length=36`` gives the UUID layout 8-4-4-4-12 of the
    paper; any other length gives that many hex digits."""
    if length == 36:
        return "-".join("".join(rng.choice(_HEX) for _ in range(n)) for n in (8, 4, 4, 4, 12))
    if not isinstance(length, int) or length < 4:
        raise ValueError(f"id_length must be an int >= 4, got {length!r}")
    return "".join(rng.choice(_HEX) for _ in range(length))


def kv_user(pairs: list[tuple[str, str]], key: str) -> str:
    """The prompt of the paper: the pairs as a JSON object (one per line), then the key."""
    body = ",\n".join(f'  "{k}": "{v}"' for k, v in pairs)
    return ("Extract the value corresponding to the specified key in the JSON object below.\n\n"
            f"JSON data:\n{{\n{body}\n}}\n\nKey: \"{key}\"\nCorresponding value:")


def _prefix(key: str) -> str:
    return f'The value corresponding to the key "{key}" is "'


class LostInTheMiddle(Task):
    name = "lost_in_the_middle"
    description = "key-value retrieval from a JSON object, the queried pair moved from first to last"
    axes = ("length", "position")
    group = "retrieval"
    chance = 1e-9
    QUICK = dict(lengths=[256, 512], positions=[0.0, 0.5, 1.0], limit=2, id_length=8)
    FULL = dict(lengths=[256, 512, 1024], positions=list(DEPTHS), limit=3, id_length=8)

    def make_item(self, lm: ProbeLM, rng: random.Random, cell: dict, settings: dict) -> Item:
        length, position = cell["length"], cell["position"]
        if not 0.0 <= position <= 1.0:
            raise ValueError(f"position must be in [0, 1], got {position}")
        size = settings.get("id_length", 8)
        pool, seen = [], set()
        while len(pool) < max(16, length // 4):  # distinct keys and values, more than can fit
            k, v = random_id(rng, size), random_id(rng, size)
            if k not in seen and v not in seen:
                seen.update((k, v))
                pool.append((k, v))
        target, others = pool[0], pool[1:]

        def arrange(k: int):
            n = k + 2  # at least two pairs
            i = round(position * (n - 1))
            return others[:i] + [target] + others[i:n - 1], i

        def build(k: int) -> str:
            if k + 1 > len(others):
                return " " * (10 * length)
            return kv_user(arrange(k)[0], target[0])

        k, user = fit_to_length(self.count(lm), build, length, f"{self.name} (length={length})")
        pairs, index = arrange(k)
        value = target[1]
        return Item(self.name, 0, dict(cell), [{"role": "user", "content": user}], _prefix(target[0]),
                    value + '"', [(0, len(value))],
                    meta={"pairs": len(pairs), "index": index, "user_tokens": lm.count_tokens(user)})

    def solve(self, messages: list) -> str:
        user = last_user(messages)
        m = re.search(r"JSON data:\n(\{.*?\n\})\n\nKey: \"([^\"]+)\"", user, re.S)
        if m is None:
            raise ValueError("no JSON object and key in the prompt")
        value = json.loads(m.group(1))[m.group(2)]
        return _prefix(m.group(2)) + value + '"'
