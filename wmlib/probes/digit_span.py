"""Digit span, forward and backward: repeat a list of digits heard one at a time.

In the human test the examiner reads the digits aloud, one per second, and then asks for them: the
list is never in view at recall. A transformer keeps everything in its context, so the closest
operationalisation is a conversation in which each digit arrives in its own turn (the model
acknowledges it with ``OK``), and the recall request comes in a later turn that does not repeat
them: to answer, the model must gather digits scattered over many turns, in order (forward) or in
reverse order (backward, which needs the list *manipulated*, not copied). Under a KV-cache policy
that evicts old turns (``--kv-policy window:...``) the digits are out of view in the literal sense.

The reply is started with ``The digits are:`` and scored on the digits (``exact``: the whole list
and its full stop; ``partial``: the fraction of positions right). The span, by the human
convention, is where the span curve falls through 50 % (:func:`span_from_curve`).
"""

from __future__ import annotations

import random
import re

from ._core import ProbeLM
from .tasks import Item, Task, join_parts

__all__ = ["DigitSpan", "digit_sequence", "span_from_curve"]

_HOW = {"forward": "in the order I gave them", "backward": "in reverse order, the last digit first"}


def digit_sequence(length: int, rng: random.Random) -> list[int]:
    """Random digits with no digit repeated back to back (as in clinical span lists)."""
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    seq = [rng.randrange(10)]
    while len(seq) < length:
        d = rng.randrange(10)
        if d != seq[-1]:
            seq.append(d)
    return seq


def span_from_curve(lengths, accuracies, threshold: float = 0.5) -> float:
    """The span of a span curve: the length where accuracy falls through ``threshold``.

    Linear interpolation between the last length at or above the threshold and the first one
    below it. The curve is read from the shortest length up and stops at the first crossing.
    If even the shortest list is below the threshold, the span is interpolated towards an
    imagined length ``lengths[0] - 1`` at accuracy 1 (can be < lengths[0]); if no length falls
    below, the span is the longest length tested (a lower bound).
    """
    pts = sorted(zip(lengths, accuracies))
    if not pts:
        raise ValueError("the span curve is empty")
    for _, a in pts:
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"accuracies must lie in [0, 1], got {a}")
    prev_len, prev_acc = pts[0][0] - 1, 1.0
    for length, acc in pts:
        if acc < threshold:
            return prev_len + (prev_acc - threshold) / (prev_acc - acc) * (length - prev_len)
        prev_len, prev_acc = length, acc
    return float(pts[-1][0])


def _instruction(order: str) -> str:
    return ("Let's test your memory. I will tell you a list of digits, one at a time. Reply OK to each digit. "
            f"When I say \"Now repeat\", write all the digits {_HOW[order]}, separated by commas.")


class DigitSpan(Task):
    description = "digit span: digits given one per turn, recalled later"
    group = "span"
    axes = ("digits",)
    length_axis = "digits"
    chance = 0.0
    QUICK = dict(digits=[3, 5, 7, 9], limit=4)
    FULL = dict(digits=[3, 4, 5, 6, 7, 8, 10], limit=12)

    def __init__(self, order: str):
        if order not in _HOW:
            raise ValueError(f"order must be 'forward' or 'backward', got {order!r}")
        self.order = order
        self.name = f"digit_span_{order}"
        self.description = f"digit span {order}: digits given one per turn, recalled {_HOW[order]}"

    def make_item(self, lm: ProbeLM, rng: random.Random, cell: dict, settings: dict) -> Item:
        digits = digit_sequence(cell["digits"], rng)
        messages = []
        for i, d in enumerate(digits):
            messages.append({"role": "user", "content": f"{_instruction(self.order)}\n\n{d}" if i == 0 else str(d)})
            messages.append({"role": "assistant", "content": "OK"})
        messages.append({"role": "user", "content": "Now repeat the digits."})
        target = digits if self.order == "forward" else digits[::-1]
        answer, parts = join_parts([str(d) for d in target])
        return Item(self.name, 0, dict(cell), messages, "The digits are:", answer, parts,
                    meta={"digits": "".join(map(str, digits))})

    def solve(self, messages: list) -> str:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users or "write all the digits" not in users[0]:
            raise ValueError("no digit-span instruction in the conversation")
        order = "backward" if _HOW["backward"] in users[0] else "forward"
        digits = [re.findall(r"\d", u.splitlines()[-1])[0] for u in users if re.fullmatch(r"\d", u.splitlines()[-1])]
        if order == "backward":
            digits = digits[::-1]
        return "The digits are:" + join_parts(digits)[0]
