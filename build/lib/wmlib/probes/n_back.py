"""n-back (Kirchner 1958; for ChatGPT, Gong et al. 2023): is this letter the one n steps back?

Letters are shown one per line; the question is about the **last** letter: does it match the
letter ``n`` positions before it? Each trial is one prompt, so the model never sees its own or
anybody's earlier answers. Trials are balanced:

- half are **targets** (the last letter equals the one ``n`` back);
- a quarter are **lures**: the last letter equals a letter ``n-1`` or ``n+1`` back but not the one
  ``n`` back (a model that only asks "did I see this letter recently?" says yes to them);
- a quarter are plain **non-targets**.

``n = 0`` is the control condition of human studies: the question names a cue letter ("is the
last letter K?"), so nothing has to be remembered; a model that fails it cannot do the task's
comparison or its yes/no format, and its n-back scores say nothing about memory.

The answer is a forced choice between ``yes`` and ``no`` (either capitalisation, probabilities
added) after the reply has been started with ``Answer:`` (log-likelihood scoring). Left to itself,
SmolLM2-135M-Instruct often answers in a sentence ("The last letter (V) matches ...") that a
string match cannot grade, and the forced choice also yields a margin, log p(yes) - log p(no),
for the threshold-free ROC AUC. Accuracy alone misleads when a model always says the same thing,
so the probe also reports balanced accuracy, F1, hit and false-alarm rates and the
chance-corrected discrimination (hit rate - false-alarm rate); chance is 0.5 for balanced
accuracy and AUC, 0 for discrimination.
"""

from __future__ import annotations

import random
import time

from ..utils import progress
from ._core import ProbeLM, ProbeResult, binary_scores, roc_auc

__all__ = ["nback_trial", "zero_back_trial", "nback_prompt", "run_n_back", "QUICK", "FULL", "LETTERS"]

QUICK = dict(ns=[0, 1, 2, 3], trials=8, length=8)
FULL = dict(ns=[0, 1, 2, 3], trials=48, length=8)

LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # consonants, as in many human n-back studies


def nback_trial(n: int, length: int, kind: str, rng: random.Random, letters: str = LETTERS) -> list[str]:
    """A letter sequence whose last letter is a ``"target"``, ``"lure"`` or ``"nontarget"`` for n-back
    (``n >= 1``; for the 0-back control see :func:`zero_back_trial`)."""
    if n < 1:
        raise ValueError(f"n must be at least 1 for nback_trial (0-back: zero_back_trial), got {n}")
    if length < n + 2:
        raise ValueError(f"length must be at least n + 2 = {n + 2} (room for a lure), got {length}")
    _check_kind(kind)
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


def zero_back_trial(length: int, kind: str, rng: random.Random, letters: str = LETTERS) -> tuple[list[str], str]:
    """The 0-back control: ``(sequence, cue)``; the question is whether the last letter *is* the cue.

    No letter has to be remembered (the cue and the last letter are both named in the question),
    so this measures whether the model can do the comparison and the yes/no format at all. A lure
    is a cue that occurs earlier in the sequence but is not the last letter.
    """
    if length < 2:
        raise ValueError(f"length must be at least 2, got {length}")
    _check_kind(kind)
    seq = [rng.choice(letters) for _ in range(length)]
    if kind == "target":
        return seq, seq[-1]
    if kind == "lure":
        earlier = [c for c in seq[:-1] if c != seq[-1]]
        if not earlier:
            seq[-2] = rng.choice([c for c in letters if c != seq[-1]])
            earlier = [seq[-2]]
        return seq, rng.choice(earlier)
    return seq, rng.choice([c for c in letters if c not in seq])


def _check_kind(kind):
    if kind not in ("target", "lure", "nontarget"):
        raise ValueError(f"kind must be 'target', 'lure' or 'nontarget', got {kind!r}")


def nback_prompt(seq: list[str], n: int, cue: str | None = None) -> tuple[str, str]:
    """(user prompt, reply prefix) asking whether the last letter of ``seq`` matches n back (or, for
    ``n = 0``, whether it is the letter ``cue``)."""
    if n == 0:
        if cue is None:
            raise ValueError("0-back needs the cue letter")
        question = f"Is the last letter ({seq[-1]}) the letter {cue}?"
    else:
        where = "the letter just before it" if n == 1 else f"the letter {n} positions before it"
        question = f"Does the last letter ({seq[-1]}) match {where}?"
    user = (f"This is a {n}-back memory task. Here is a sequence of letters, one per line:\n\n"
            + "\n".join(seq) + f"\n\n{question} Answer yes or no.")
    return user, "Answer:"


def run_n_back(lm: ProbeLM, ns=(0, 1, 2, 3), trials: int = 8, length: int = 8, seed: int = 0) -> ProbeResult:
    """Scores per n (keys ``"0"``, ``"1"``, ...): accuracy, balanced accuracy, F1, AUC, ...

    ``n = 0`` is the 0-back control of human studies: is the last letter the cue letter?

    ``trials`` per n should be a multiple of 4 (half targets, a quarter lures, a quarter plain).
    """
    if trials < 4:
        raise ValueError(f"trials must be at least 4 (targets, lures and non-targets), got {trials}")
    start = time.perf_counter()
    rng = random.Random(seed)
    kinds = ["target", "target", "lure", "nontarget"]
    cells, prompts = [], []
    for n in progress(list(ns), desc="n-back: building prompts"):
        if n < 0 or length < n + 2:
            raise ValueError(f"n-back needs n >= 0 and length >= n + 2; got n={n}, length={length}")
        for t in range(trials):
            kind = kinds[t % 4]
            if n == 0:
                seq, cue = zero_back_trial(length, kind, rng)
            else:
                seq, cue = nback_trial(n, length, kind, rng), None
            user, prefix = nback_prompt(seq, n, cue)
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
