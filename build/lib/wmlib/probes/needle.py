"""Needle in a haystack (Kamradt 2023): one fact hidden at a chosen depth of a long document.

The original test hides "the best thing to do in San Francisco" in Paul Graham's essays and asks
GPT-4 to grade free answers. Here everything is synthetic and graded exactly:

- the **haystack** is bland, varied filler sentences drawn from a small grammar (no external data,
  no digits), cut to ``context_length`` tokens;
- the **needle** is ``The secret code for the <city> vault is <5 random digits>.``, placed at a
  sentence boundary ``depth`` of the way into the document (0 = first sentence, 1 = last);
- the **question** asks for the code; the model's reply is started with the needle's own words
  (``The secret code for the <city> vault is``) and scored by greedy match of `` <code>.``: the
  five digits and the full stop that ends them (a sixth digit would be wrong).

Starting the reply fixes the answer format, so that the score measures retrieval rather than
formatting. A model that ignores the context is right with probability about 1e-5.
``distractors > 0`` adds needles for other cities (the multi-key variant of RULER): then copying
*a* code is not enough; the code must be the one whose city the question names.
"""

from __future__ import annotations

import random
import time

from ..utils import progress
from ._core import ProbeLM, ProbeResult

__all__ = ["haystack_sentences", "needle_item", "run_needle", "QUICK", "FULL"]

QUICK = dict(context_lengths=[128, 512], depths=[0.0, 0.5, 1.0], trials=1, distractors=0)
FULL = dict(context_lengths=[256, 512, 1024, 2048], depths=[0.0, 0.25, 0.5, 0.75, 1.0], trials=2, distractors=0)

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
_CITIES = ["Lisbon", "Oslo", "Cairo", "Lima", "Hanoi", "Dublin", "Nairobi", "Quito", "Tunis", "Riga",
           "Perth", "Osaka", "Bergen", "Porto", "Krakow", "Seville"]


def haystack_sentences(rng: random.Random):
    """An endless stream of filler sentences (no digits, no 'secret', no 'code')."""
    while True:
        opener = rng.choice(_OPENERS)
        subject = rng.choice(_SUBJECTS)
        text = f"{opener}{subject} {rng.choice(_PREDICATES)}."
        yield text[0].upper() + text[1:]


def needle_item(lm: ProbeLM, context_length: int, depth: float, rng: random.Random, distractors: int = 0) -> dict:
    """One needle trial: the user prompt, the reply prefix, the answer and where the needle sits.

    ``context_length`` is the length of the document (haystack + needles) in tokens; ``depth`` in
    [0, 1] is the fraction of the haystack's tokens that come before the needle. ``distractors``
    other needles (codes of other cities' vaults) go to random places: then finding *a* code is
    not enough, the model must find the one whose city matches the question (the multi-key
    variant of RULER, Hsieh et al. 2024).
    """
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    if context_length < 16:
        raise ValueError(f"context_length must be at least 16 tokens, got {context_length}")
    if not 0 <= distractors < len(_CITIES):
        raise ValueError(f"distractors must be in [0, {len(_CITIES) - 1}], got {distractors}")
    city, *others = rng.sample(_CITIES, 1 + distractors)
    codes = rng.sample(range(10_000, 100_000), 1 + distractors)
    code = str(codes[0])
    needle = f"The secret code for the {city} vault is {code}."
    fakes = [f"The secret code for the {c} vault is {n}." for c, n in zip(others, codes[1:])]
    budget = context_length - sum(lm.count_tokens(" " + x) for x in [needle, *fakes])
    if budget < 1:
        raise ValueError(f"context_length={context_length} leaves no room for a haystack around the needle")
    sentences, counts, total = [], [], 0
    stream = haystack_sentences(rng)
    while True:  # fill up to the budget; the last sentence is dropped if it overflows
        s = next(stream)
        n = lm.count_tokens(" " + s)
        if total + n > budget and sentences:
            break
        sentences.append(s)
        counts.append(n)
        total += n
    # insert at the sentence boundary whose token offset is closest to depth * haystack tokens
    offsets = [sum(counts[:i]) for i in range(len(sentences) + 1)]
    where = min(range(len(offsets)), key=lambda i: abs(offsets[i] - depth * total))
    slots = [[] for _ in offsets]  # what goes in front of haystack sentence i (or at the end)
    slots[where].append(needle)
    for fake in fakes:
        slots[rng.randrange(len(slots))].append(fake)
    rng.shuffle(slots[where])  # a distractor in the same slot may come before or after the needle
    document = " ".join(x for i in range(len(offsets)) for x in slots[i] + sentences[i:i + 1])
    user = (f"{document}\n\nQuestion: What is the secret code for the {city} vault? "
            "Answer with the code from the text above.")
    return {
        "user": user,
        "prefix": f"The secret code for the {city} vault is",
        "answer": f" {code}.",
        "document_tokens": lm.count_tokens(document),
        "needle_index": where,
        "actual_depth": offsets[where] / max(total, 1),
    }


def run_needle(lm: ProbeLM, context_lengths=(128, 512), depths=(0.0, 0.5, 1.0), trials: int = 1,
               distractors: int = 0, seed: int = 0) -> ProbeResult:
    """Accuracy on a (context length x depth) grid: ``scores[length][depth]`` in [0, 1]."""
    settings = {"context_lengths": list(context_lengths), "depths": list(depths), "trials": trials,
                "distractors": distractors}
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    start = time.perf_counter()
    rng = random.Random(seed)
    cells, prompts, answers = [], [], []
    grid = [(L, d) for L in settings["context_lengths"] for d in settings["depths"]]
    for L, d in progress(grid, desc="needle: building prompts"):
        for _ in range(trials):
            item = needle_item(lm, L, d, rng, distractors)
            prompts.append(lm.prompt_ids(item["user"], item["prefix"]))
            answers.append(lm.encode(item["answer"]))
            cells.append((L, d, item))
    for (L, d, _), p, a in zip(cells, prompts, answers):
        lm.check_fits(len(p) + len(a), f"needle (context_length={L})")
    results = lm.score_answers(prompts, answers, desc="needle", what="needle")
    scores: dict = {}
    for (L, d, _), r in zip(cells, results):
        scores.setdefault(str(L), {}).setdefault(f"{d:g}", []).append(r.correct)
    scores = {L: {d: sum(v) / len(v) for d, v in row.items()} for L, row in scores.items()}
    flat = [r.correct for r in results]
    examples = [{"context_length": L, "depth": d, "prompt_tail": it["user"][-160:], "prefix": it["prefix"],
                 "answer": it["answer"], "correct": r.correct,
                 "top_tokens": lm.tokenizer.decode(list(r.predicted))}
                for (L, d, it), r in list(zip(cells, results))[:: max(1, len(cells) // 4)]]
    return ProbeResult(
        probe="needle", model=lm.name, scores=scores,
        summary={"mean_accuracy": sum(flat) / len(flat), "trials": len(flat)},
        settings={**settings, "seed": seed, "chat_template": lm.use_chat_template,
                  "scoring": "greedy match of the 5-digit code and its full stop after a prefilled reply"},
        chance={"accuracy": 1 / 90_000, "accuracy_if_picking_a_code_in_the_text": 1 / (1 + distractors)},
        seconds=time.perf_counter() - start, examples=examples,
    )
