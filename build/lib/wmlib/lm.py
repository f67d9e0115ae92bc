"""Reading and writing with a causal language model: one home for prompts, scoring and generation.

Every chapter that asks a language model something goes through these functions, so that a fix
(padding, positions, a tokenizer without BOS, a hub generation config) is made once:

- **prompts**: :func:`special_prefix` (the tokens a tokenizer puts before text by itself: a BOS
  token for Llama 3 or Gemma, nothing for Qwen or SmolLM2), :func:`encode`, and the chat-template
  policy :func:`encode_prompt` (``"auto" | "on" | "off"``, one parameter across the book, recorded in
  every result); :func:`encode_with_offsets` and :func:`token_span` locate text by *characters*, so
  that code never assumes one token per digit or word;
- **scoring**: :func:`score_continuations` (the log-probability of each continuation after its
  prompt, and whether greedy decoding would write it: under teacher forcing on the correct prefix,
  "every continuation token is the model's top choice" is exactly "``generate`` writes it"),
  :func:`score_candidates` (several candidates per prompt, the prompt read once) and
  :func:`next_token_logprobs` (the next-token distribution after each prompt, with an optional
  shared prefix read once and its KV cache reused);
- **generation**: :func:`greedy_generate`, ``model.generate`` with a neutral generation config (a
  hub ``generation_config.json`` may ask for a repetition penalty or sampling; greedy decoding here
  is plain argmax, so that "identical to ``generate``" means what it says).

Prompts are token-id lists. Batches are left-padded (every sequence ends in the same column) with
position ids counted from each row's first real token, so that a padded row computes what it would
alone, and are sized by a token budget.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = [
    "CHAT_TEMPLATE_POLICIES", "uses_chat_template", "special_prefix", "encode", "render_prompt", "encode_prompt",
    "encode_with_offsets", "token_span", "context_limit", "pad_id", "batches_by_tokens",
    "ContinuationScores", "score_continuations", "score_candidates", "next_token_logprobs", "neutral_generation_config",
    "greedy_generate",
]

CHAT_TEMPLATE_POLICIES = ("auto", "on", "off")


# ----------------------------------------------------------------------------------- prompts
def uses_chat_template(tokenizer, policy: str | bool = "auto") -> bool:
    """Resolve the chat-template policy: ``"auto"`` uses the tokenizer's chat template when it has
    one (instruction-tuned models were trained on it), ``"on"`` requires it, ``"off"`` writes plain text."""
    if isinstance(policy, bool):
        policy = "on" if policy else "off"
    if policy not in CHAT_TEMPLATE_POLICIES:
        raise ValueError(f"chat_template must be one of {CHAT_TEMPLATE_POLICIES}, got {policy!r}")
    has = bool(getattr(tokenizer, "chat_template", None))
    if policy == "on" and not has:
        raise ValueError("chat_template='on' but this tokenizer has no chat template; use 'auto' or 'off'")
    return has if policy == "auto" else policy == "on"


def special_prefix(tokenizer) -> list[int]:
    """The token ids the tokenizer itself puts before any text (its BOS token, if it adds one).

    Found by comparing the tokenization of a probe text with and without special tokens, so it
    follows what the tokenizer does rather than whether it *has* a ``bos_token``: Llama 3 and Gemma
    add one, Qwen and SmolLM2 (under transformers 5) add none.
    """
    probe = "a"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    if len(full) >= len(plain) and full[len(full) - len(plain):] == plain:
        return list(full[:len(full) - len(plain)])
    return []


def encode(tokenizer, text: str, prefix: bool = True) -> list[int]:
    """Token ids of ``text``, preceded by :func:`special_prefix` when ``prefix`` (and nothing else:
    no end-of-sequence token a tokenizer might append)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return (special_prefix(tokenizer) if prefix else []) + list(ids)


def render_prompt(tokenizer, user: str, assistant_prefix: str = "", chat_template: str | bool = "auto") -> str:
    """The prompt as text: ``user`` as one user turn of the chat template, then the start of the
    model's reply; or, without a template, ``user + "\\n" + assistant_prefix``."""
    if uses_chat_template(tokenizer, chat_template):
        head = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
        return head + assistant_prefix
    return user + "\n" + assistant_prefix


def encode_prompt(tokenizer, user: str, assistant_prefix: str = "", chat_template: str | bool = "auto") -> list[int]:
    """Token ids of :func:`render_prompt`: a chat template brings its own special tokens; plain text
    gets the tokenizer's :func:`special_prefix`."""
    text = render_prompt(tokenizer, user, assistant_prefix, chat_template)
    if uses_chat_template(tokenizer, chat_template):
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return encode(tokenizer, text)


def encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` (no special tokens) and each token's character span ``(start, end)``."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise ValueError("locating text by characters needs a fast tokenizer (return_offsets_mapping); "
                         "load the model's tokenizer with use_fast=True") from None
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """The tokens ``[first, last)`` that cover the characters ``[start, end)`` of the text.

    A token that straddles the boundary is included: the span covers every character asked for.
    """
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got start={start}, end={end}")
    hits = [i for i, (s, e) in enumerate(offsets) if s < end and e > start and e > s]
    if not hits:
        raise ValueError(f"no token covers characters {start}..{end} (the text has {max((e for _, e in offsets), default=0)})")
    return hits[0], hits[-1] + 1


def context_limit(model) -> int | None:
    """The longest context the model was built for (``max_position_embeddings`` or its synonyms)."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def pad_id(tokenizer) -> int:
    """The id to pad with: the tokenizer's pad token, else its end-of-sequence token (padding is
    masked out, so which token it is does not matter)."""
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has neither a pad token nor an end-of-sequence token to pad with")


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _check_ids(rows, what: str, vocab: int | None) -> list[list[int]]:
    out = []
    for i, r in enumerate(rows):
        r = r.tolist() if isinstance(r, torch.Tensor) else list(r)
        if not r:
            raise ValueError(f"{what} {i} has no tokens")
        if any(not isinstance(t, int) or isinstance(t, bool) for t in r):
            raise ValueError(f"{what} {i} must be a list of token ids (ints); got {r[:5]}...")
        if vocab is not None and (min(r) < 0 or max(r) >= vocab):
            raise ValueError(f"{what} {i} has token ids outside [0, {vocab}): {min(r)}..{max(r)}")
        out.append(r)
    return out


def _check_fits(model, length: int, what: str) -> None:
    limit = context_limit(model)
    if limit is not None and length > limit:
        raise ValueError(f"{what} needs {length} tokens, more than the model's context of {limit} "
                         "(config.max_position_embeddings); shorten it or use a model with a longer context")


def batches_by_tokens(lengths: Sequence[int], batch_tokens: int, max_batch: int = 32) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, so that a batch's rows times
    its longest row stays within ``batch_tokens`` (a row longer than that is a batch of its own)."""
    if batch_tokens < 1 or max_batch < 1:
        raise ValueError(f"batch_tokens and max_batch must be positive, got {batch_tokens}, {max_batch}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        if batch and (len(batch) + 1 > max_batch or (len(batch) + 1) * width > batch_tokens):
            out.append(batch)
            batch = []
        batch.append(i)
    if batch:
        out.append(batch)
    return out


def _default_batch_tokens(model) -> int:
    return 65536 if _device(model).type == "cuda" else 8192


def _left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids, attention mask and position ids (counted from each row's first real token)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def _logits_tail(model, ids, mask, positions, keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` columns, float32: ``(B, keep, V)``."""
    dev = _device(model)
    kwargs = dict(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev), use_cache=False)
    try:
        logits = model(**kwargs, logits_to_keep=keep).logits
    except TypeError:  # an architecture without logits_to_keep: compute all, keep the tail
        logits = model(**kwargs).logits
    return logits[:, -keep:].float()


# ----------------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class ContinuationScores:
    """How a model scores continuation ``i`` after prompt ``i`` (all ``(N,)`` except ``predicted``).

    ``logprob``: summed log-probability of the continuation's tokens (nats);
    ``greedy``: every continuation token was the model's top prediction (greedy decoding writes it);
    ``token_accuracy``: the fraction of continuation tokens that were;
    ``n_tokens``: continuation length in tokens;
    ``predicted``: per continuation, the model's top token at each of its positions, given the
    correct tokens before it (the first is what greedy decoding writes first).
    """

    logprob: torch.Tensor
    greedy: torch.Tensor
    token_accuracy: torch.Tensor
    n_tokens: torch.Tensor
    predicted: list


@torch.no_grad()
def score_continuations(model, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
                        pad_token_id: int, batch_tokens: int | None = None, max_batch: int = 32,
                        desc: str | None = None) -> ContinuationScores:
    """Score ``continuations[i]`` (token ids) after ``prompts[i]`` (token ids) in one forward pass
    per batch over ``prompt + continuation``; see :class:`ContinuationScores`."""
    from .utils import progress

    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations: pair them one to one")
    if not prompts:
        raise ValueError("no prompts to score")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    prompts = _check_ids(prompts, "prompt", vocab)
    continuations = _check_ids(continuations, "continuation", vocab)
    seqs = [p + c for p, c in zip(prompts, continuations)]
    for i, s in enumerate(seqs):
        _check_fits(model, len(s), f"prompt {i} with its continuation")
    n = len(seqs)
    logprob, greedy, acc = torch.zeros(n), torch.zeros(n, dtype=torch.bool), torch.zeros(n)
    predicted: list = [None] * n
    batches = batches_by_tokens([len(s) for s in seqs], batch_tokens or _default_batch_tokens(model), max_batch)
    for batch in progress(batches, desc=desc or "scoring", total=len(batches)) if desc else batches:
        keep = max(len(continuations[i]) for i in batch) + 1
        ids, mask, pos = _left_pad([seqs[i] for i in batch], pad_token_id)
        logp = torch.log_softmax(_logits_tail(model, ids, mask, pos, keep), dim=-1).cpu()
        for row, i in enumerate(batch):
            c = torch.tensor(continuations[i])
            # column j predicts the token at column j + 1; the continuation fills the last len(c)
            # columns, so its predictions sit at columns keep-len(c)-1 .. keep-2
            lp = logp[row, keep - len(c) - 1: keep - 1]
            top = lp.argmax(-1)
            hits = top == c
            logprob[i] = lp.gather(-1, c[:, None]).sum()
            greedy[i] = bool(hits.all())
            acc[i] = hits.float().mean()
            predicted[i] = top.tolist()
    n_tokens = torch.tensor([len(c) for c in continuations])
    return ContinuationScores(logprob, greedy, acc, n_tokens, predicted)


@torch.no_grad()
def score_candidates(model, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[Sequence[int]]], *,
                     pad_token_id: int, max_batch: int = 16) -> ContinuationScores:
    """Score several candidate continuations per prompt, reading each prompt only once.

    ``candidates[i][j]`` (token ids) follows ``prompts[i]``; every prompt has the same number C of
    candidates. The prompts are read (left-padded) with the KV cache kept, and each candidate is fed
    after a copy of that cache, so C candidates cost little more than one. Returns
    :class:`ContinuationScores` whose tensors are ``(N, C)`` and ``predicted`` a list of N lists of C.
    """
    if len(prompts) != len(candidates):
        raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists: pair them one to one")
    if not prompts:
        raise ValueError("no prompts to score")
    if len({len(c) for c in candidates}) != 1 or not candidates[0]:
        raise ValueError("every prompt needs the same number (at least one) of candidates")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    prompts = _check_ids(prompts, "prompt", vocab)
    candidates = [_check_ids(c, f"candidate of prompt {i}", vocab) for i, c in enumerate(candidates)]
    for i, (p, cs) in enumerate(zip(prompts, candidates)):
        _check_fits(model, len(p) + max(len(c) for c in cs), f"prompt {i} with its longest candidate")
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
    N, C, dev = len(prompts), len(candidates[0]), _device(model)
    logprob, acc = torch.zeros(N, C), torch.zeros(N, C)
    greedy = torch.zeros(N, C, dtype=torch.bool)
    n_tokens = torch.tensor([[len(c) for c in cs] for cs in candidates])
    predicted = [[None] * C for _ in range(N)]
    for start in range(0, N, max_batch):
        rows = list(range(start, min(start + max_batch, N)))
        ids, mask, pos = _left_pad([prompts[i] for i in rows], pad_token_id)
        kwargs = dict(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), use_cache=True)
        try:
            first = model(**kwargs, logits_to_keep=1)
        except TypeError:
            first = model(**kwargs)
        first_logp = torch.log_softmax(first.logits[:, -1].float(), dim=-1).cpu()  # predicts candidate token 0
        next_pos = pos[:, -1:] + 1
        for j in range(C):
            conts = [candidates[i][j] for i in rows]
            longest = max(len(c) for c in conts)
            logp = first_logp[:, None]
            if longest > 1:  # feed tokens 0..n-2 of each candidate (right-padded) after the cached prompt
                feed = torch.full((len(rows), longest - 1), pad_token_id, dtype=torch.long)
                feed_mask = torch.zeros_like(feed)
                for r, c in enumerate(conts):
                    feed[r, :len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
                    feed_mask[r, :len(c) - 1] = 1
                rest = model(input_ids=feed.to(dev), attention_mask=torch.cat([mask, feed_mask], 1).to(dev),
                             position_ids=(next_pos + torch.arange(longest - 1)).to(dev),
                             past_key_values=copy.deepcopy(first.past_key_values), use_cache=True)
                logp = torch.cat([logp, torch.log_softmax(rest.logits.float(), dim=-1).cpu()], dim=1)
            for r, (i, c) in enumerate(zip(rows, conts)):
                target = torch.tensor(c)
                lp = logp[r, :len(c)]  # row t predicts candidate token t
                top = lp.argmax(-1)
                hits = top == target
                logprob[i, j] = lp.gather(-1, target[:, None]).sum()
                greedy[i, j] = bool(hits.all())
                acc[i, j] = hits.float().mean()
                predicted[i][j] = top.tolist()
    return ContinuationScores(logprob, greedy, acc, n_tokens, predicted)


def _prefix_cache(model, prefix: list[int]):
    out = model(torch.tensor([prefix], device=_device(model)), use_cache=True)
    return out.past_key_values


@torch.no_grad()
def next_token_logprobs(model, prompts: Sequence[Sequence[int]], *, pad_token_id: int,
                        token_ids: Sequence[int] | None = None, prefix: Sequence[int] = (),
                        batch_tokens: int | None = None, max_batch: int = 32, desc: str | None = None) -> torch.Tensor:
    """log p(next token | prefix + prompt) after each prompt: ``(N, len(token_ids))``, or ``(N, V)``
    over the whole vocabulary when ``token_ids`` is None.

    ``prefix`` (token ids shared by every prompt, e.g. an instruction and demonstrations) is read
    once; its keys and values (the KV cache) are reused by every batch, so a prompt costs only its
    own tokens. Prompts are left-padded (with a prefix, the masked padding sits between the prefix
    and the prompt) and only the last column's logits are computed.
    """
    from .utils import progress

    if isinstance(prompts, (str, bytes)):
        raise TypeError("prompts must be a sequence of token-id lists")
    if not prompts:
        raise ValueError("no prompts to score")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    prefix = list(prefix)
    if prefix:
        _check_ids([prefix], "prefix", vocab)
    prompts = _check_ids(prompts, "prompt", vocab)
    for i, p in enumerate(prompts):
        _check_fits(model, len(prefix) + len(p), f"prompt {i}")
    select = None
    if token_ids is not None:
        select = torch.tensor(_check_ids([list(token_ids)], "token_ids", vocab)[0])
    dev, P = _device(model), len(prefix)
    cache = _prefix_cache(model, prefix) if prefix else None
    budget = batch_tokens or _default_batch_tokens(model)
    batches = batches_by_tokens([P + len(p) for p in prompts], budget, max_batch)
    out = None
    for batch in progress(batches, desc=desc or "scoring", total=len(batches)) if desc else batches:
        B = len(batch)
        if cache is None:
            ids, mask, pos = _left_pad([prompts[i] for i in batch], pad_token_id)
            logits = _logits_tail(model, ids, mask, pos, 1)[:, -1]
        else:  # left-pad what follows the prefix: padding sits between the prefix and the prompt, masked out
            ids, rest_mask, pos = _left_pad([prompts[i] for i in batch], pad_token_id)
            mask = torch.cat([torch.ones(B, P, dtype=torch.long), rest_mask], dim=1)
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(B)
            kwargs = dict(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=(pos + P).to(dev),
                          past_key_values=past, use_cache=True)
            try:
                logits = model(**kwargs, logits_to_keep=1).logits[:, -1].float()
            except TypeError:
                logits = model(**kwargs).logits[:, -1].float()
        logp = torch.log_softmax(logits, dim=-1).cpu()
        if select is not None:
            logp = logp[:, select]
        if out is None:
            out = torch.empty(len(prompts), logp.shape[-1])
        out[batch] = logp
    return out


# ----------------------------------------------------------------------------------- generation
def neutral_generation_config(tokenizer=None, model=None, max_new_tokens: int = 20, stop: bool = True,
                              stop_token_ids: Sequence[int] = ()):
    """A GenerationConfig for plain greedy decoding: argmax at every step, no penalties, no sampling,
    whatever the model's hub ``generation_config.json`` says. ``stop=False`` never stops at the
    end-of-sequence token (every row gets exactly ``max_new_tokens``); ``stop_token_ids`` are
    further tokens that end a row (e.g. a newline)."""
    from transformers import GenerationConfig

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    eos = None
    if stop:
        eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
        if eos is None and model is not None:
            eos = getattr(model.generation_config, "eos_token_id", None) or getattr(model.config, "eos_token_id", None)
        extra = [int(t) for t in stop_token_ids]
        if extra:
            eos = list(dict.fromkeys(([] if eos is None else eos if isinstance(eos, list) else [eos]) + extra))
    elif stop_token_ids:
        raise ValueError("stop_token_ids need stop=True")
    pad = pad_id(tokenizer) if tokenizer is not None else getattr(getattr(model, "config", None), "pad_token_id", None)
    return GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, repetition_penalty=1.0,
                            no_repeat_ngram_size=0, temperature=1.0, top_k=50, top_p=1.0, eos_token_id=eos,
                            pad_token_id=pad if pad is not None else eos)


@contextmanager
def _only(model, config):
    """Make ``config`` the model's own generation config for the duration, so that ``generate``
    fills nothing in from the hub's config (transformers fills unset values from it)."""
    saved = model.generation_config
    model.generation_config = copy.deepcopy(config)
    try:
        yield
    finally:
        model.generation_config = saved


@torch.no_grad()
def greedy_generate(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, tokenizer=None,
                    pad_token_id: int | None = None, stop: bool = True, stop_token_ids: Sequence[int] = (),
                    batch_tokens: int | None = None, max_batch: int = 16, return_cache: bool = False):
    """Greedy continuations of ``prompts`` (token ids): a list of new-token lists, each cut after its
    first end-of-sequence token (or one of ``stop_token_ids``) when ``stop`` (that token is kept),
    else exactly ``max_new_tokens``.

    ``model.generate`` with :func:`neutral_generation_config`, on left-padded batches. With
    ``return_cache`` (one prompt only) also returns the ``past_key_values`` generate built.
    """
    config = neutral_generation_config(tokenizer, model, max_new_tokens, stop, stop_token_ids)
    pad = pad_token_id if pad_token_id is not None else config.pad_token_id
    if pad is None:
        raise ValueError("pass tokenizer= or pad_token_id= so that prompts can be padded")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    prompts = _check_ids(prompts, "prompt", vocab)
    if return_cache and len(prompts) != 1:
        raise ValueError("return_cache=True needs exactly one prompt")
    for i, p in enumerate(prompts):
        _check_fits(model, len(p) + max_new_tokens, f"prompt {i} with {max_new_tokens} new tokens")
    eos = config.eos_token_id
    eos_set = set(eos if isinstance(eos, list) else [eos]) if (stop and eos is not None) else set()
    dev = _device(model)
    out: list = [None] * len(prompts)
    cache = None
    budget = batch_tokens or _default_batch_tokens(model)
    for batch in batches_by_tokens([len(p) + max_new_tokens for p in prompts], budget, max_batch):
        ids, mask, _ = _left_pad([prompts[i] for i in batch], pad)
        with _only(model, config):
            res = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), generation_config=config,
                                 return_dict_in_generate=True)
        new = res.sequences[:, ids.shape[1]:].tolist()
        cache = res.past_key_values
        for row, i in enumerate(batch):
            toks = new[row]
            cut = next((j + 1 for j, t in enumerate(toks) if t in eos_set), len(toks))
            out[i] = toks[:cut]
    return (out, cache) if return_cache else out
