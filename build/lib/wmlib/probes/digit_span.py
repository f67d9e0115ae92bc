"""Digit span: repeat a random list of digits; the longest list repeated correctly is the span.

In the human test the examiner reads the digits aloud once, so they must be *held*; here they stay
in the context while the model answers, so forward recall is a copying task (which attention,
through induction heads, does well) rather than a test of holding. ``order="backward"`` asks for
the digits in reverse, which needs the list to be *manipulated*, as in the human backward span.

Digits are written separated by commas (``4, 1, 7``), the format SmolLM2-135M-Instruct itself uses
when it repeats a list (shown digits separated by spaces, it still answers with commas, and exact
matching fails). The reply is started with ``The digits are:`` and the whole list *and the full
stop after it* is scored by greedy match (going on with extra digits is an error, as in the human
test). The span is read off the span curve (accuracy per length) by :func:`span_from_curve`.
"""

from __future__ import annotations

import random
import time

from ..utils import progress
from ._core import ProbeLM, ProbeResult

__all__ = ["digit_sequence", "span_prompt", "span_from_curve", "run_digit_span", "QUICK", "FULL"]

QUICK = dict(lengths=[3, 6, 12, 24], trials=4, order="forward", separator=", ")
FULL = dict(lengths=[3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32], trials=10, order="forward", separator=", ")


def digit_sequence(length: int, rng: random.Random) -> list[int]:
    """Random digits with no digit repeated back to back (as in clinical span lists)."""
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    seq = [rng.randrange(10)]
    while len(seq) < length:
        d = rng.randrange(10)
        if d != seq[-1]:
            seq.append(d)
    return seq


def span_prompt(digits: list[int], order: str = "forward", separator: str = ", ") -> tuple[str, str, str]:
    """(user prompt, reply prefix, answer) for recalling ``digits`` in ``order``, written with
    ``separator`` between digits both in the prompt and in the expected answer."""
    if order not in ("forward", "backward"):
        raise ValueError(f"order must be 'forward' or 'backward', got {order!r}")
    if not separator or any(ch.isdigit() for ch in separator):
        raise ValueError(f"separator must be a non-empty string without digits, got {separator!r}")
    shown = separator.join(map(str, digits))
    how = "in the same order" if order == "forward" else "in reverse order, last digit first"
    target = digits if order == "forward" else digits[::-1]
    user = f"Here is a list of digits: {shown}\nRepeat the list {how}."
    return user, "The digits are:", " " + separator.join(map(str, target)) + "."


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
            # the straight line from (prev_len, prev_acc) to (length, acc) crosses the threshold at:
            return prev_len + (prev_acc - threshold) / (prev_acc - acc) * (length - prev_len)
        prev_len, prev_acc = length, acc
    return float(pts[-1][0])


def run_digit_span(lm: ProbeLM, lengths=(3, 6, 12, 24), trials: int = 4, order: str = "forward",
                   separator: str = ", ", seed: int = 0) -> ProbeResult:
    """Exact-recall accuracy per list length (``scores["accuracy"][length]``) and the span."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    start = time.perf_counter()
    rng = random.Random(seed)
    cells, prompts, answers = [], [], []
    for length in progress(list(lengths), desc="digit span: building prompts"):
        for _ in range(trials):
            digits = digit_sequence(length, rng)
            user, prefix, answer = span_prompt(digits, order, separator)
            ids = lm.prompt_ids(user, prefix)
            lm.check_fits(len(ids) + lm.count_tokens(answer), f"digit span (length={length})")
            prompts.append(ids)
            answers.append(lm.encode(answer))
            cells.append((length, user, answer, digits))
    results = lm.score_answers(prompts, answers, desc=f"digit span ({order})", what="digit span")
    acc: dict = {}
    tok: dict = {}
    for (length, *_), r in zip(cells, results):
        acc.setdefault(str(length), []).append(r.correct)
        tok.setdefault(str(length), []).append(r.token_accuracy)
    acc = {k: sum(v) / len(v) for k, v in acc.items()}
    tok = {k: sum(v) / len(v) for k, v in tok.items()}
    span = span_from_curve([int(k) for k in acc], list(acc.values()))
    # What does the model write first? The right digit, or (backward) the list's first digit, which
    # is where a forward copy would start. Read at the first answer token that holds a digit.
    first_right, first_is_start = [], []
    for (*_, digits), r, a in zip(cells, results, answers):
        k = next(i for i, t in enumerate(a) if any(ch.isdigit() for ch in lm.tokenizer.decode([t])))
        said = lm.tokenizer.decode([r.predicted[k]]).strip()
        first_right.append(said == lm.tokenizer.decode([a[k]]).strip())
        first_is_start.append(said == str(digits[0]))
    examples = [{"length": n, "prompt": u, "answer": a, "correct": r.correct,
                 "top_tokens": lm.tokenizer.decode(list(r.predicted))}
                for (n, u, a, _), r in list(zip(cells, results))[::trials]]
    return ProbeResult(
        probe="digit-span", model=lm.name, scores={"accuracy": acc, "digit_accuracy": tok},
        summary={"span": span, "span_is_lower_bound": all(a >= 0.5 for a in acc.values()),
                 "order": order, "trials": len(results),
                 "first_digit_right": sum(first_right) / len(first_right),
                 "first_digit_is_the_lists_first": sum(first_is_start) / len(first_is_start)},
        settings={"lengths": list(lengths), "trials": trials, "order": order, "separator": separator, "seed": seed,
                  "chat_template": lm.use_chat_template,
                  "scoring": "greedy match of the whole list and its full stop after a prefilled reply"},
        chance={"accuracy": 0.0}, seconds=time.perf_counter() - start, examples=examples,
    )
