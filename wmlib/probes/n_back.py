"""n-back (Kirchner 1958; for ChatGPT, Gong et al. 2023): is this letter the one n steps back?

Letters are shown one per line; the question is about the **last** letter: does it match the
letter ``n`` positions before it? Each trial is one prompt, so the model never sees its own or
anybody's earlier answers. Trials are balanced:

- half are **targets** (the last letter equals the one ``n`` back);
- a quarter are **lures**: the last letter equals a letter ``n-1`` or ``n+1`` back but not the one
  ``n`` back (a model that only asks "did I see this letter recently?" says yes to them);
- a quarter are plain **non-targets**.

The model's answer is a forced choice between ``yes`` and ``no`` (either capitalisation, their
probabilities added) after the reply ``Answer:`` has begun (log-likelihood scoring): a free-running 135M model often does not answer with either word,
and a forced choice also yields a margin, log p(yes) - log p(no), for the threshold-free ROC AUC.
Accuracy alone is misleading when a model always says the same thing, so the probe reports
balanced accuracy, F1, hit and false-alarm rates and the chance-corrected discrimination
(hit rate - false-alarm rate) as well; chance is 0.5 for balanced accuracy and AUC, 0 for
discrimination.
"""

from __future__ import annotations

import random
import time

from ..utils import progress
from ._core import ProbeLM, ProbeResult, binary_scores, roc_auc

__all__ = ["nback_trial", "nback_prompt", "run_n_back", "QUICK", "FULL", "LETTERS"]

QUICK = dict(ns=[1, 2, 3], trials=24, length=8)
FULL = dict(ns=[1, 2, 3], trials=96, length=10)

LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # consonants, as in many human n-back studies


def nback_trial(n: int, length: int, kind: str, rng: random.Random, letters: str = LETTERS) -> list[str]:
    """A letter sequence whose last letter is a ``"target"``, ``"lure"`` or ``"nontarget"`` for n-back."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if length < n + 2:
        raise ValueError(f"length must be at least n + 2 = {n + 2} (room for a lure), got {length}")
    if kind not in ("target", "lure", "nontarget"):
        raise ValueError(f"kind must be 'target', 'lure' or 'nontarget', got {kind!r}")
    while True:
        seq = [rng.choice(letters) for _ in range(length - 1)]
        back = {k: seq[-k] for k in range(1, length)}  # the letter k steps before the last one
        if kind == "target":
            last = back[n]
        else:
            near = [back[k] for k in (n - 1, n + 1) if k in back and back[k] != back[n]]
            if kind == "lure":
                if not near:
                    continue  # the neighbours equal the n-back letter: draw again
                last = rng.choice(near)
            else:  # a letter that is neither n back nor a lure
                pool = [c for c in letters if c != back[n] and c not in near]
                last = rng.choice(pool)
        return seq + [last]


def nback_prompt(seq: list[str], n: int) -> tuple[str, str]:
    """(user prompt, reply prefix) asking whether the last letter of ``seq`` matches n back."""
    where = "the letter just before it" if n == 1 else f"the letter {n} positions before it"
    user = (f"This is a {n}-back memory task. Here is a sequence of letters, one per line:\n\n"
            + "\n".join(seq)
            + f"\n\nDoes the last letter ({seq[-1]}) match {where}? Answer yes or no.")
    return user, "Answer:"


def run_n_back(lm: ProbeLM, ns=(1, 2, 3), trials: int = 24, length: int = 8, seed: int = 0) -> ProbeResult:
    """Scores per n (keys ``"1"``, ``"2"``, ...): accuracy, balanced accuracy, F1, AUC, ...

    ``trials`` per n should be a multiple of 4 (half targets, a quarter lures, a quarter plain).
    """
    if trials < 4:
        raise ValueError(f"trials must be at least 4 (targets, lures and non-targets), got {trials}")
    start = time.perf_counter()
    rng = random.Random(seed)
    kinds = ["target", "target", "lure", "nontarget"]
    cells, prompts = [], []
    for n in progress(list(ns), desc="n-back: building prompts"):
        if length < n + 2:
            raise ValueError(f"length={length} is too short for {n}-back: use at least {n + 2}")
        for t in range(trials):
            kind = kinds[t % 4]
            seq = nback_trial(n, length, kind, rng)
            user, prefix = nback_prompt(seq, n)
            prompts.append(lm.prompt_ids(user, prefix))
            cells.append((n, kind, seq))
    logp = lm.choose(prompts, [[" yes", " Yes"], [" no", " No"]], desc="n-back", what="n-back")
    margins = (logp[:, 0] - logp[:, 1]).tolist()
    scores, summary = {}, {}
    for n in ns:
        rows = [i for i, c in enumerate(cells) if c[0] == n]
        labels = [cells[i][1] == "target" for i in rows]
        preds = [margins[i] > 0 for i in rows]
        s = binary_scores(preds, labels)
        s["auc"] = roc_auc([margins[i] for i in rows], labels)
        lures = [margins[i] > 0 for i in rows if cells[i][1] == "lure"]
        plain = [margins[i] > 0 for i in rows if cells[i][1] == "nontarget"]
        s["lure_false_alarm_rate"] = sum(lures) / len(lures)
        s["plain_false_alarm_rate"] = sum(plain) / len(plain)
        scores[str(n)] = s
        summary[str(n)] = {"mean_margin_target": _mean([margins[i] for i in rows if cells[i][1] == "target"]),
                           "mean_margin_other": _mean([margins[i] for i in rows if cells[i][1] != "target"])}
    examples = [{"n": n, "kind": kind, "letters": "".join(seq), "said_yes": margins[i] > 0}
                for i, (n, kind, seq) in enumerate(cells) if i % max(1, trials // 2) == 0][:6]
    return ProbeResult(
        probe="n-back", model=lm.name, scores=scores, summary=summary,
        settings={"ns": list(ns), "trials": trials, "length": length, "seed": seed,
                  "chat_template": lm.use_chat_template, "targets": 0.5, "lures": 0.25,
                  "scoring": "forced choice: p(yes) vs p(no) after 'Answer:', either capitalisation"},
        chance={"accuracy": 0.5, "balanced_accuracy": 0.5, "auc": 0.5, "discrimination": 0.0},
        seconds=time.perf_counter() - start, examples=examples,
    )


def _mean(v):
    return sum(v) / len(v) if v else float("nan")
