"""Lost in the middle (Liu et al. 2023/2024): does accuracy depend on *where* the answer sits?

The synthetic key-value retrieval task of the paper: a JSON object of ``n_pairs`` random
UUID-like keys and values, then one of the keys; the model must return its value. Nothing can be
known in advance, so the answer must be read from the context. The paper found a U-shaped curve
for large models: best when the pair is at the start or the end, worst in the middle.

Each trial draws one object and then places the queried pair at every position in ``positions``
(fractions of the object, 0 = first pair, 1 = last) with the other pairs in the same order: the
curve compares positions on the same objects. The reply is started with
``The value corresponding to the key "<key>" is "`` (the model's own phrasing when it answers
freely) and scored by greedy match of the whole value and its closing quote.
"""

from __future__ import annotations

import random
import time

from ..utils import progress
from ._core import ProbeLM, ProbeResult

__all__ = ["random_id", "kv_prompt", "run_lost_in_the_middle", "QUICK", "FULL"]

QUICK = dict(n_pairs=[10], positions=[0.0, 0.5, 1.0], trials=4, id_length=8)
FULL = dict(n_pairs=[10, 20, 40], positions=[0.0, 0.25, 0.5, 0.75, 1.0], trials=10, id_length=8)

_HEX = "0123456789abcdef"


def random_id(rng: random.Random, length: int = 36) -> str:
    """A random lowercase-hex identifier. ``length=36`` gives the UUID layout 8-4-4-4-12 used in the
    paper; any other length gives that many hex digits."""
    if length == 36:
        return "-".join("".join(rng.choice(_HEX) for _ in range(n)) for n in (8, 4, 4, 4, 12))
    if length < 1:
        raise ValueError(f"id length must be positive, got {length}")
    return "".join(rng.choice(_HEX) for _ in range(length))


def kv_prompt(pairs: list[tuple[str, str]], query_index: int) -> tuple[str, str, str]:
    """(user prompt, reply prefix, answer) for retrieving ``pairs[query_index]`` from a JSON object
    written one pair per line."""
    if not 0 <= query_index < len(pairs):
        raise ValueError(f"query_index {query_index} is outside the {len(pairs)} pairs")
    body = ",\n".join(f'  "{k}": "{v}"' for k, v in pairs)
    key, value = pairs[query_index]
    user = ("Extract the value corresponding to the specified key in the JSON object below.\n\n"
            f"JSON data:\n{{\n{body}\n}}\n\nKey: \"{key}\"\nCorresponding value:")
    return user, f'The value corresponding to the key "{key}" is "', value + '"'


def position_index(fraction: float, n_pairs: int) -> int:
    """Pair index for a position given as a fraction of the object (0 = first, 1 = last)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"positions are fractions in [0, 1], got {fraction}")
    return round(fraction * (n_pairs - 1))


def run_lost_in_the_middle(lm: ProbeLM, n_pairs=(10,), positions=(0.0, 0.5, 1.0), trials: int = 4,
                           id_length: int = 8, seed: int = 0) -> ProbeResult:
    """Accuracy by number of pairs and position of the answer: ``scores["accuracy"][n_pairs][position]``.

    Also ``first_token_accuracy`` (the first character of the value, given the reply so far: did the
    model find *where* to copy from?) and ``token_accuracy`` (the fraction of the value's tokens
    that are the model's top choice given the correct ones before them).
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    for n in n_pairs:
        if n < 2:
            raise ValueError(f"n_pairs must be at least 2, got {n}")
    start = time.perf_counter()
    rng = random.Random(seed)
    cells, prompts, answers = [], [], []
    for n in progress(list(n_pairs), desc="lost in the middle: building prompts"):
        for _ in range(trials):
            pairs, seen = [], set()
            while len(pairs) < n:  # distinct keys and values
                k, v = random_id(rng, id_length), random_id(rng, id_length)
                if k not in seen and v not in seen:
                    seen.update((k, v))
                    pairs.append((k, v))
            target, others = pairs[0], pairs[1:]
            for f in positions:
                i = position_index(f, n)
                arranged = others[:i] + [target] + others[i:]
                user, prefix, answer = kv_prompt(arranged, i)
                ids = lm.prompt_ids(user, prefix)
                lm.check_fits(len(ids) + lm.count_tokens(answer), f"lost in the middle (n_pairs={n})")
                prompts.append(ids)
                answers.append(lm.encode(answer))
                cells.append((n, f, user, prefix, answer))
    results = lm.score_answers(prompts, answers, desc="lost in the middle", what="lost in the middle")
    per_cell: dict = {"accuracy": {}, "first_token_accuracy": {}, "token_accuracy": {}}
    for (n, f, *_), r, a in zip(cells, results, answers):
        values = {"accuracy": r.correct, "first_token_accuracy": r.predicted[0] == a[0],
                  "token_accuracy": r.token_accuracy}
        for name, value in values.items():
            per_cell[name].setdefault(str(n), {}).setdefault(f"{f:g}", []).append(value)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    scores = {name: {n: {f: mean(v) for f, v in row.items()} for n, row in table.items()}
              for name, table in per_cell.items()}
    examples = [{"n_pairs": n, "position": f, "prompt_tail": u[-200:], "prefix": p, "answer": a, "correct": r.correct,
                 "top_tokens": lm.tokenizer.decode(list(r.predicted))}
                for (n, f, u, p, a), r in list(zip(cells, results))[: len(positions)]]
    return ProbeResult(
        probe="lost-in-the-middle", model=lm.name, scores=scores,
        summary={"mean_accuracy": mean([r.correct for r in results]), "trials": len(results),
                 "prompt_tokens": {str(n): max(len(p) for (m, *_), p in zip(cells, prompts) if m == n)
                                   for n in n_pairs}},
        settings={"n_pairs": list(n_pairs), "positions": list(positions), "trials": trials, "id_length": id_length,
                  "seed": seed, "chat_template": lm.use_chat_template,
                  "scoring": "greedy match of the whole value and its closing quote after a prefilled reply"},
        chance={"accuracy": 16.0 ** -(32 if id_length == 36 else id_length),
                "accuracy_if_picking_a_value_in_the_text": {str(n): 1 / n for n in n_pairs}},
        seconds=time.perf_counter() - start, examples=examples,
    )
