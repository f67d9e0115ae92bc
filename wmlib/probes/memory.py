"""Probing a model whose working memory is a KV cache under an eviction policy (Chapter 7).

A policy is written as on the command line:

- ``full``: nothing is evicted (the model as it is);
- ``window:256``: keep the 256 most recent tokens (:class:`~wmlib.kv_cache.SlidingWindow`);
- ``sinks:4+252``: keep the first 4 tokens and the 252 most recent (StreamingLLM,
  :class:`~wmlib.kv_cache.AttentionSinks`; budget 256);
- ``h2o:256`` or ``h2o:128+128``: keep the tokens that received the most attention so far plus the
  most recent ones (H2O, :class:`~wmlib.kv_cache.HeavyHitters`; by default half and half).

Probing under a policy reads the prompt *and the correct answer* token by token through a cache
that never holds more than the budget (:func:`~wmlib.kv_cache.stream_under_budget`), and reads the
model's greedy prediction at every answer position: the same greedy match as with the full cache
(the answer is what greedy decoding under the policy would write exactly when every prediction is
right). Rotary positions stay those of the text (``positions="original"``), which is right while
the text fits in the model's trained context. Policies with the same budget run side by side in
one batch (:class:`~wmlib.kv_cache.PerRow`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

__all__ = ["PolicySpec", "parse_policy", "policy_mask", "score_under_policies"]


@dataclass(frozen=True)
class PolicySpec:
    """A parsed ``--kv-policy`` value; ``kind`` is ``full``, ``window``, ``sinks`` or ``h2o``."""

    label: str
    kind: str
    budget: int | None = None
    sinks: int = 0
    recent: int | None = None

    def build(self):
        """The :class:`~wmlib.kv_cache.EvictionPolicy` (None for the full cache)."""
        from ..kv_cache import AttentionSinks, HeavyHitters, SlidingWindow

        if self.kind == "full":
            return None
        if self.kind == "window":
            return SlidingWindow(self.budget)
        if self.kind == "sinks":
            return AttentionSinks(self.budget, sinks=self.sinks)
        return HeavyHitters(self.budget, recent=self.recent)


_FORMS = "full, window:N, sinks:S+R (S first tokens and R recent ones), h2o:N or h2o:H+R"


def parse_policy(text: str) -> PolicySpec:
    """``"window:256"`` -> PolicySpec; a clear ValueError names the accepted forms otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"a KV policy is a string ({_FORMS}), got {text!r}")
    t = text.strip().lower()
    if t in ("full", "none"):
        return PolicySpec("full", "full")
    m = re.fullmatch(r"(window|sinks|h2o):(\d+)(?:\+(\d+))?", t)
    if m is None:
        raise ValueError(f"unknown KV policy {text!r}; write {_FORMS}")
    kind, a, b = m.group(1), int(m.group(2)), m.group(3)
    if kind == "window":
        if b is not None:
            raise ValueError(f"{text!r}: a window has one number, its budget (window:256)")
        spec = PolicySpec(t, "window", a)
    elif kind == "sinks":
        if b is None:
            raise ValueError(f"{text!r}: write sinks:S+R, e.g. sinks:4+252 (4 first tokens, 252 recent)")
        spec = PolicySpec(t, "sinks", a + int(b), sinks=a)
    else:
        spec = PolicySpec(t, "h2o", a + int(b), recent=int(b)) if b is not None else PolicySpec(t, "h2o", a)
    if spec.budget < 2 or (spec.kind == "sinks" and spec.sinks < 1):
        raise ValueError(f"{text!r}: the budget must be at least 2 tokens (and sinks at least 1)")
    return spec


def policy_mask(spec: PolicySpec, n: int) -> torch.Tensor:
    """(n, n) bool: which keys token t attends to when the cache is read under ``spec``, one token at a
    time with eviction after each (what :func:`~wmlib.kv_cache.stream_under_budget` does).

    A window keeps the ``budget`` tokens before t (t - budget .. t, t itself included); sinks keep
    the first ``sinks`` tokens and the ``budget - sinks`` before t. Both depend only on positions,
    so one forward pass with this mask computes them exactly; H2O depends on attention already
    paid, so it must be streamed.
    """
    if spec.kind not in ("window", "sinks"):
        raise ValueError(f"{spec.label}: only window and sinks policies are a fixed mask")
    t = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    recent = spec.budget - spec.sinks
    return (j <= t) & ((j >= t - recent) | (j < spec.sinks))


@torch.no_grad()
def _masked_predictions(lm, ids: list, specs: list[PolicySpec], keep: int):
    """Greedy predictions and log-probabilities of the last ``keep`` positions under each mask policy."""
    n = len(ids)
    masks = torch.stack([policy_mask(s, n) for s in specs])[:, None]  # (P, 1, n, n)
    dtype = next(lm.model.parameters()).dtype
    additive = torch.zeros(masks.shape, dtype=dtype).masked_fill(~masks, torch.finfo(dtype).min)
    x = torch.tensor([ids] * len(specs), device=lm.device)
    positions = torch.arange(n, device=lm.device).expand(len(specs), n)
    out = lm.model(input_ids=x, attention_mask=additive.to(lm.device), position_ids=positions, use_cache=False)
    return torch.log_softmax(out.logits[:, -keep:].float().cpu(), dim=-1)


@torch.no_grad()
def score_under_policies(lm, prompts: list, answers: list, specs: list[PolicySpec], desc: str = "kv policy",
                         rows: int = 16):
    """Greedy predictions and answer log-probabilities of every (prompt, answer) under every policy.

    Returns ``out[policy_label][i] = (predicted token ids, logprob)``. Window and sinks policies are
    computed exactly by one forward pass with their attention mask (:func:`policy_mask`); H2O by
    streaming the tokens through a :class:`~wmlib.kv_cache.CachedDecoder` with eviction after each
    (policies of one budget and up to ``rows`` sequences side by side, :class:`~wmlib.kv_cache.PerRow`).
    Sequences that fit in a
    policy's budget are the full cache's, as the policy would leave them.
    """
    from ..kv_cache import CachedDecoder, PerRow, stream_under_budget
    from ..utils import progress

    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    out = {s.label: [None] * len(prompts) for s in specs}
    full = lm.score_answers(prompts, answers, desc="full cache", what="a probe")
    for s in specs:
        if s.kind == "full":
            out[s.label] = [(list(r.predicted), r.logprob) for r in full]
    masked = [s for s in specs if s.kind in ("window", "sinks")]
    streamed = [s for s in specs if s.kind == "h2o"]
    decoder = CachedDecoder(lm.model) if streamed else None
    for i in progress(range(len(prompts)), desc=desc, total=len(prompts)):
        p, a = list(prompts[i]), list(answers[i])
        n = len(p) + len(a)
        for s in masked + streamed:
            if n <= s.budget:  # nothing to evict: the policy is the full cache
                out[s.label][i] = (list(full[i].predicted), full[i].logprob)
        todo = [s for s in masked if n > s.budget]
        if todo:
            logp = _masked_predictions(lm, p + a, todo, len(a) + 1)[:, :-1]  # position t predicts t + 1
            target = torch.tensor(a)
            for row, s in enumerate(todo):
                out[s.label][i] = (logp[row].argmax(-1).tolist(), float(logp[row].gather(-1, target[:, None]).sum()))
    # H2O: read token by token with eviction. Rows run side by side (a step costs about the same for one
    # row or many: it reads every weight once). Shorter rows are padded at the *end*: a row's state at
    # step t depends only on its own tokens 0..t, so padding after its answer changes nothing it is
    # scored on.
    for budget in sorted({s.budget for s in streamed}):
        group = [s for s in streamed if s.budget == budget]
        todo = sorted((i for i in range(len(prompts)) if len(prompts[i]) + len(answers[i]) > budget),
                      key=lambda i: len(prompts[i]) + len(answers[i]))
        per_batch = max(1, rows // len(group))
        batches = [todo[k:k + per_batch] for k in range(0, len(todo), per_batch)]
        for batch in progress(batches, desc=f"{desc} ({', '.join(s.label for s in group)})", total=len(batches)):
            seqs = [list(prompts[i]) + list(answers[i]) for i in batch]
            width = max(len(x) for x in seqs)
            pad = lm.tokenizer.pad_token_id
            ids = torch.tensor([x + [pad] * (width - len(x)) for _ in group for x in seqs], device=decoder.device)
            policy = PerRow([s.build() for s in group], rows_each=len(batch))
            res = stream_under_budget(decoder, ids, policy)
            for g, s in enumerate(group):
                for r, i in enumerate(batch):
                    row = g * len(batch) + r
                    # position t predicts token t + 1: the answer is predicted at len(p) - 1 .. len(p) + len(a) - 2
                    span = slice(len(prompts[i]) - 1, len(prompts[i]) + len(answers[i]) - 1)
                    out[s.label][i] = (res.predictions[row, span].tolist(), -float(res.nll[row, span].sum()))
    return out
