"""The n-back task, streamed one letter at a time as in Gong et al. (2023).

A block is a conversation: the instruction, then one letter per user turn; after every letter the
model responds ``m`` (the letter matches the one ``n`` turns back) or ``-`` (it does not), and its
own response stays in the conversation, as in a chat. Nothing but the letters seen so far is
available when a response is made, so the task asks for *updating*: at each turn the letter n back
changes. ``n = 0`` is the control condition of human studies: respond ``m`` to one named letter;
nothing has to be remembered, so a model that fails it cannot do the task's format at all.

Following Gong et al., a block has 30 letters, 10 of them targets (matches), at random places;
non-targets never match. The response at each turn is a forced choice between the two
responses (which is likelier after the reply has started), read with the model's own KV cache so
that a block costs one short forward pass per letter. Scores per ``n``: accuracy, hit rate and
false-alarm rate (Wilson intervals), and the sensitivity d' = z(hit rate) - z(false-alarm rate)
of each block (log-linear correction, :func:`wmlib.stats.dprime`; Gong et al. clip rates at
0.01 and 0.99 instead), averaged over blocks with a bootstrap interval. d' = 0 is chance for a
responder that guesses; with 10 targets and 20 non-targets the correction gives a responder that
*always* says the same thing d' of about -0.3. The margins log p(m) - log p(-) also give a
threshold-free score, the ROC AUC (0.5 = chance), which a bias towards one response cannot move.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

from .. import lm as lm_
from ._core import ProbeLM
from .tasks import Task, item_rng

__all__ = ["NBack", "Block", "LETTERS", "run_blocks"]

LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # consonants, as in many human n-back studies
RESPONSES = ("m", "-")
_WORDS = {1: "the previous letter", 2: "the letter two trials ago", 3: "the letter three trials ago"}


def instruction(n: int, cue: str | None = None) -> str:
    if n == 0:
        rule = (f"respond with 'm' whenever the letter presented is {cue}, and '-' whenever it is any other "
                "letter")
        task = "0-back"
    else:
        back = _WORDS.get(n, f"the letter {n} trials ago")
        rule = (f"respond with 'm' whenever the letter presented is the same as {back}, and '-' whenever "
                f"the letter presented is different from {back}")
        task = f"{n}-back"
    return (f"Instruction: as a language model, you are asked to perform a {task} task. A letter will be "
            f"presented on every trial. Your task is to {rule}. A strict rule is that you must not output "
            "anything other than 'm' or '-'. Now begins the task.")


@dataclass
class Block:
    """One block: ``letters[t]`` is shown at trial t; ``targets[t]`` says whether it matches."""

    n: int
    letters: list
    targets: list
    cue: str | None = None
    doc_id: int = 0


def make_block(n: int, rng: random.Random, trials: int = 30, targets: int = 10, letters: str = LETTERS) -> Block:
    """A block with exactly ``targets`` matches (at trials >= n) and no accidental ones."""
    if n < 0 or not isinstance(n, int):
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not 0 < targets <= trials - n:
        raise ValueError(f"targets must be in [1, trials - n = {trials - n}], got {targets}")
    where = set(rng.sample(range(n, trials), targets))
    cue = rng.choice(letters) if n == 0 else None
    seq: list[str] = []
    for t in range(trials):
        match = cue if n == 0 else (seq[t - n] if t >= n else None)
        if t in where:
            seq.append(match)
        else:
            seq.append(rng.choice([c for c in letters if c != match]))
    return Block(n, seq, [t in where for t in range(trials)], cue)


def _turns(block: Block, responses: list) -> list:
    """The conversation after ``len(responses)`` answered trials, ending with the next letter."""
    t = len(responses)
    msgs = [{"role": "user", "content": f"{instruction(block.n, block.cue)}\n\n{block.letters[0]}"}]
    for i in range(t):
        msgs += [{"role": "assistant", "content": responses[i]}, {"role": "user", "content": block.letters[i + 1]}]
    return msgs


def render_turns(lm: ProbeLM, messages: list) -> str:
    """The conversation as turns (chat template, or ``User:``/``Assistant:`` lines), ending where
    the assistant's reply starts; one turn or many, the same format (so that it only grows)."""
    if lm.use_chat_template:
        return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def _response_ids(lm: ProbeLM) -> list[int]:
    lead = "" if lm.use_chat_template else " "
    ids = [lm.encode(lead + r) for r in RESPONSES]
    if any(not i for i in ids) or ids[0][0] == ids[1][0]:
        raise ValueError(f"the responses {RESPONSES} must start with different tokens in {lm.name}'s tokenizer")
    return [i[0] for i in ids]


class _Mismatch(Exception):
    pass


@torch.no_grad()
def _run_lockstep(lm: ProbeLM, blocks: list[Block], choice_ids: list[int]):
    """Run blocks side by side in one batch (needs the same number of tokens per turn in every
    row); returns per block the responses and margins log p(m) - log p(-)."""
    B, T = len(blocks), len(blocks[0].letters)
    responses: list[list[str]] = [[] for _ in blocks]
    margins: list[list[float]] = [[] for _ in blocks]
    seen = [""] * B
    past, total = None, 0
    for t in range(T):
        texts = [render_turns(lm, _turns(b, r)) for b, r in zip(blocks, responses)]
        deltas = []
        for i, text in enumerate(texts):
            if not text.startswith(seen[i]):
                raise _Mismatch("the rendered conversation does not extend the previous one")
            deltas.append(lm_.encode(lm.tokenizer, text[len(seen[i]):], prefix=t == 0 and not lm.use_chat_template))
        if len({len(d) for d in deltas}) != 1:
            raise _Mismatch("turns of different token lengths")
        total += len(deltas[0])
        lm.check_fits(total, "n-back")
        ids = torch.tensor(deltas, device=lm.device)
        out = lm.model(input_ids=ids, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        for i in range(B):
            m = float(logp[i, choice_ids[0]] - logp[i, choice_ids[1]])
            margins[i].append(m)
            responses[i].append(RESPONSES[0] if m > 0 else RESPONSES[1])
        seen = texts
    return responses, margins


def run_blocks(lm: ProbeLM, blocks: list[Block]):
    """Responses and margins of every block: side by side when the turns allow, else one by one."""
    choice_ids = _response_ids(lm)
    try:
        return _run_lockstep(lm, blocks, choice_ids)
    except _Mismatch:
        responses, margins = [], []
        for b in blocks:
            try:
                r, m = _run_lockstep(lm, [b], choice_ids)
            except _Mismatch:
                r, m = _run_recompute(lm, b, choice_ids)
            responses += r
            margins += m
        return responses, margins


@torch.no_grad()
def _run_recompute(lm: ProbeLM, block: Block, choice_ids):
    """The slow, always-correct path: the whole conversation re-read at every trial."""
    lead = "" if lm.use_chat_template else " "
    responses, margins = [], []
    for _ in block.letters:
        text = render_turns(lm, _turns(block, responses))
        ids = lm_.encode(lm.tokenizer, text, prefix=not lm.use_chat_template)
        logp = lm.choose([ids], [lead + r for r in RESPONSES], desc="n-back", what="n-back")[0]
        m = float(logp[0] - logp[1])
        margins.append(m)
        responses.append(RESPONSES[0] if m > 0 else RESPONSES[1])
    return [responses], [margins]


class NBack(Task):
    name = "nback"
    description = "n-back on letters streamed one per turn, a response per letter (Gong et al. 2023)"
    group = "updating"
    axes = ("n",)
    length_axis = None
    kind = "stream"
    chance = 0.5
    QUICK = dict(ns=[0, 1, 2, 3], limit=4, trials=30, targets=10)
    FULL = dict(ns=[0, 1, 2, 3], limit=12, trials=30, targets=10)

    def blocks(self, settings: dict, seed: int = 0) -> list[Block]:
        out = []
        for n in settings["ns"]:
            for b in range(settings["limit"]):
                block = make_block(n, item_rng(seed, self.name, n, b), settings["trials"], settings["targets"])
                block.doc_id = b
                out.append(block)
        return out

    def solve(self, messages: list) -> str:
        """The correct response to the last letter of a block's conversation."""
        first = messages[0]["content"]
        m = re.search(r"perform a (\d+)-back task", first)
        if m is None:
            raise ValueError("no n-back instruction in the conversation")
        n = int(m.group(1))
        letters = [u["content"].split("\n")[-1].strip() for u in messages if u["role"] == "user"]
        if n == 0:
            cue = re.search(r"the letter presented is (\w),", first).group(1)
            return RESPONSES[0] if letters[-1] == cue else RESPONSES[1]
        return RESPONSES[0] if len(letters) > n and letters[-1] == letters[-1 - n] else RESPONSES[1]
