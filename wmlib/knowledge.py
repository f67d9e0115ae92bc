"""Knowledge in the weights vs knowledge in the context (Chapter 2).

A small set of well-known facts, written as cloze prompts ("The capital of France is" -> " Paris"),
and the measurements the chapter makes with them:

- :func:`score_candidates` scores candidate continuations of each prompt (reading the prompt
  once): their log-probabilities and whether greedy decoding would produce them;
- :func:`counterfactual_prompt` builds "<false fact> <filler sentences> <cloze prompt>" prompts;
- :func:`override_rate` is the fraction of answers that follow the context rather than the weights;
- :func:`filler_pool` and :func:`filler_text` make unrelated text of a given length in tokens, and
  :func:`conflict_trials` measures, fact by fact, which memory wins when that much text separates
  a false statement from its question (the distance experiment of Chapter 2 and its recorded run).

Greedy decoding produces a continuation ``c_1..c_k`` exactly when, with the continuation fed in
(teacher forcing), the most likely next token at every step is the next ``c_i``. So one forward
pass over ``prompt + continuation`` tells us whether ``model.generate`` (greedy) would start with it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

__all__ = [
    "Fact", "RELATIONS", "FACTS", "facts", "counterfactual_answers", "ContinuationScore",
    "score_candidates", "score_continuations", "counterfactual_prompt", "override_rate",
    "CLOZE_INSTRUCTION", "cloze_encoding", "filler_pool", "filler_text", "conflict_trials", "known_facts",
    "babi_filler_pool", "distance_sample", "DISTANCE_RUN", "distance_run",
]


@dataclass(frozen=True)
class Fact:
    """A subject-relation-answer triple. ``prompt`` is the cloze sentence the model completes
    (no trailing space); ``answer`` the expected continuation, starting with a space."""

    relation: str
    subject: str
    answer: str

    @property
    def prompt(self) -> str:
        return RELATIONS[self.relation]["cloze"].format(s=self.subject)

    def statement(self, answer: str | None = None, reworded: bool = False) -> str:
        """The fact as a sentence, with ``answer`` (e.g. a counterfactual one) in place of the true one.

        ``reworded=True`` puts the answer first ("Rome is the capital city of France."), so that the
        cloze prompt does not appear word for word in it.
        """
        answer = self.answer if answer is None else answer
        if not reworded:
            return f"{self.prompt}{answer}."
        return RELATIONS[self.relation]["reworded"].format(s=self.subject, a=answer.strip())


# Each relation: a cloze template that ends where the answer begins, and a reworded statement.
RELATIONS: dict[str, dict[str, str]] = {
    "capital": {"cloze": "The capital of {s} is", "reworded": "{a} is the capital city of {s}."},
    "landmark": {"cloze": "The {s} is located in the city of", "reworded": "{a} is the home of the {s}."},
    "language": {"cloze": "The official language of {s} is", "reworded": "{a} is what people speak in {s}."},
    "continent": {"cloze": "{s} is a country in the continent of", "reworded": "{a} is where {s} lies."},
}

_CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Russia": "Moscow", "the United Kingdom": "London", "Egypt": "Cairo",
    "Greece": "Athens", "Portugal": "Lisbon", "Austria": "Vienna", "Ireland": "Dublin", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw",
    "Hungary": "Budapest", "the Czech Republic": "Prague", "the Netherlands": "Amsterdam",
    "Belgium": "Brussels", "Thailand": "Bangkok", "South Korea": "Seoul", "Argentina": "Buenos Aires",
    "Peru": "Lima", "Chile": "Santiago", "Mexico": "Mexico City", "Cuba": "Havana", "Kenya": "Nairobi",
    "India": "New Delhi", "Iran": "Tehran", "Iraq": "Baghdad", "Afghanistan": "Kabul",
    "Indonesia": "Jakarta", "the Philippines": "Manila", "Vietnam": "Hanoi", "Canada": "Ottawa",
    "Australia": "Canberra", "Turkey": "Ankara", "Switzerland": "Bern", "Saudi Arabia": "Riyadh",
    "Nigeria": "Abuja", "Pakistan": "Islamabad", "Venezuela": "Caracas", "Romania": "Bucharest",
    "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb", "Scotland": "Edinburgh",
}
_LANDMARKS = {
    "Eiffel Tower": "Paris", "Colosseum": "Rome", "Big Ben clock tower": "London",
    "Statue of Liberty": "New York", "Golden Gate Bridge": "San Francisco", "Brandenburg Gate": "Berlin",
    "Sagrada Familia": "Barcelona", "Kremlin": "Moscow", "Acropolis": "Athens",
    "Forbidden City": "Beijing", "Taj Mahal": "Agra", "Space Needle": "Seattle",
    "Louvre museum": "Paris", "Vatican": "Rome", "Hollywood sign": "Los Angeles",
}
_LANGUAGES = {
    "France": "French", "Germany": "German", "Italy": "Italian", "Spain": "Spanish", "Japan": "Japanese",
    "Russia": "Russian", "Portugal": "Portuguese", "Brazil": "Portuguese", "Mexico": "Spanish",
    "Greece": "Greek", "Poland": "Polish", "the Netherlands": "Dutch", "Sweden": "Swedish",
    "Turkey": "Turkish", "Egypt": "Arabic", "Finland": "Finnish",
}
_CONTINENTS = {
    "France": "Europe", "Kenya": "Africa", "Japan": "Asia", "Brazil": "South America",
    "Canada": "North America", "Egypt": "Africa", "India": "Asia", "Argentina": "South America",
    "Germany": "Europe", "Nigeria": "Africa", "Thailand": "Asia", "Peru": "South America",
    "Mexico": "North America", "Norway": "Europe",
}

FACTS: tuple[Fact, ...] = tuple(
    Fact(rel, s, " " + a)
    for rel, table in (("capital", _CAPITALS), ("landmark", _LANDMARKS), ("language", _LANGUAGES),
                       ("continent", _CONTINENTS))
    for s, a in table.items()
)


def facts(relation: str | None = None) -> list[Fact]:
    """The book's fact set (all relations, or one of :data:`RELATIONS`)."""
    if relation is not None and relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; choose one of {sorted(RELATIONS)}")
    return [f for f in FACTS if relation is None or f.relation == relation]


def counterfactual_answers(fact_list: list[Fact], seed: int = 0) -> list[str]:
    """One false answer per fact, drawn (seeded) from the answers of the same relation that differ
    from the true one: "The Eiffel Tower is located in the city of" -> " Rome", never " Paris"."""
    rng = random.Random(seed)
    pool: dict[str, list[str]] = {}
    for f in FACTS:
        pool.setdefault(f.relation, [])
        if f.answer not in pool[f.relation]:
            pool[f.relation].append(f.answer)
    out = []
    for f in fact_list:
        choices = [a for a in pool.get(f.relation, []) if a != f.answer]
        if not choices:
            raise ValueError(f"no other answer of relation {f.relation!r} to use as a counterfactual for {f}")
        out.append(rng.choice(choices))
    return out


@dataclass(frozen=True)
class ContinuationScore:
    """Per prompt and candidate: ``logprob`` (sum over the candidate's tokens, nats), ``greedy`` (True
    when greedy decoding from the prompt produces exactly these tokens first), ``n_tokens``.

    Shapes are ``(N,)`` from :func:`score_continuations`, ``(N, C)`` from :func:`score_candidates`.
    """

    logprob: torch.Tensor  # float
    greedy: torch.Tensor  # bool
    n_tokens: torch.Tensor  # long


CLOZE_INSTRUCTION = "Continue the text."


def cloze_encoding(tokenizer, text: str, chat_template: str | bool = "off") -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` as the model reads it, and each token's character span in ``text``.

    ``chat_template`` is the book's policy (:func:`wmlib.lm.uses_chat_template`): plain text
    (``"off"``, the default: a cloze prompt for a base model) gets the tokenizer's special-token
    prefix (BOS where it uses one), whose tokens get the span ``(-1, -1)``; with a template the text
    becomes the start of the model's reply to the user turn :data:`CLOZE_INSTRUCTION`, and the
    template's tokens get negative spans (they lie before ``text``).
    """
    from . import lm

    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if lm.uses_chat_template(tokenizer, chat_template):
        head = lm.render_prompt(tokenizer, CLOZE_INSTRUCTION, "", chat_template)
        ids, offsets = lm.encode_with_offsets(tokenizer, head + text)
        return ids, [(a - len(head), b - len(head)) for a, b in offsets]
    ids, offsets = lm.encode_with_offsets(tokenizer, text)
    prefix = lm.special_prefix(tokenizer)
    return prefix + ids, [(-1, -1)] * len(prefix) + offsets


def score_candidates(model, tokenizer, prompts: list[str], candidates: list[list[str]],
                     batch_size: int = 16, chat_template: str | bool = "off") -> ContinuationScore:
    """Score every candidate continuation ``candidates[i][j]`` after ``prompts[i]``.

    Prompt and candidate are tokenized separately, the way ``generate`` sees them (the prompt
    through :func:`cloze_encoding`: with the tokenizer's special-token prefix, e.g. a BOS token,
    when it uses one, or inside the chat template when ``chat_template`` asks for it), and scored by
    :func:`wmlib.lm.score_candidates`, which reads each prompt once and reuses its KV cache for
    every candidate. Returns ``(N, C)`` tensors.
    """
    from . import lm

    if isinstance(prompts, str) or not all(isinstance(c, (list, tuple)) for c in candidates):
        raise TypeError("prompts must be a list of strings and candidates a list of lists of strings")
    if len(prompts) != len(candidates):
        raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists: pair them one to one")
    if len({len(c) for c in candidates}) > 1:
        raise ValueError("every prompt needs the same number of candidates")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not prompts:
        raise ValueError("no prompts to score")
    p_ids = [cloze_encoding(tokenizer, p, chat_template)[0] if p else [] for p in prompts]
    c_ids = [[lm.encode(tokenizer, c, prefix=False) for c in cands] for cands in candidates]
    for prompt, ids, cands, row in zip(prompts, p_ids, candidates, c_ids):
        if not prompt or not ids or not all(row):
            raise ValueError(f"empty prompt or candidate: {prompt!r} -> {cands!r}")
    s = lm.score_candidates(model, p_ids, c_ids, pad_token_id=lm.pad_id(tokenizer), max_batch=batch_size)
    return ContinuationScore(s.logprob, s.greedy, s.n_tokens)


def score_continuations(model, tokenizer, prompts: list[str], continuations: list[str],
                        batch_size: int = 16, chat_template: str | bool = "off") -> ContinuationScore:
    """Score ``continuations[i]`` after ``prompts[i]``: :func:`score_candidates` with one candidate
    each; returns ``(N,)`` tensors."""
    if isinstance(prompts, str) or isinstance(continuations, str):
        raise TypeError("prompts and continuations must be lists of strings, not single strings")
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations: pair them one to one")
    s = score_candidates(model, tokenizer, prompts, [[c] for c in continuations], batch_size=batch_size,
                         chat_template=chat_template)
    return ContinuationScore(s.logprob[:, 0], s.greedy[:, 0], s.n_tokens[:, 0])


def counterfactual_prompt(fact: Fact, false_answer: str, filler: list[str] | tuple[str, ...] = (),
                          reworded: bool = False) -> str:
    """"<fact stated with false_answer> <filler sentences> <the fact's cloze prompt>".

    With ``reworded=False`` the statement repeats the prompt's own words, so copying the word that
    followed them last time answers it; ``reworded=True`` states the fact in other words.
    """
    if isinstance(filler, str):
        raise TypeError("filler must be a list of sentences, not one string")
    if not isinstance(false_answer, str) or not false_answer.strip():
        raise ValueError(f"false_answer must be a non-empty string, got {false_answer!r}")
    return " ".join([fact.statement(false_answer, reworded=reworded), *filler, fact.prompt])


def override_rate(context_greedy, weights_greedy=None) -> float:
    """Fraction of facts whose greedy answer follows the context.

    ``context_greedy``: bools, True where the model produced the answer stated in the context.
    ``weights_greedy`` (optional): True where it produced the answer stored in its weights; when
    given, both must not be True for the same fact (they are different answers).
    """
    ctx = torch.as_tensor(context_greedy)
    if ctx.dtype != torch.bool or ctx.dim() != 1 or ctx.numel() == 0:
        raise ValueError(f"context_greedy must be a non-empty 1-D sequence of bools, got {ctx.dtype} of shape {tuple(ctx.shape)}")
    if weights_greedy is not None:
        w = torch.as_tensor(weights_greedy)
        if w.shape != ctx.shape or w.dtype != torch.bool:
            raise ValueError(f"weights_greedy must match context_greedy: bools of shape {tuple(ctx.shape)}")
        if (w & ctx).any():
            raise ValueError("an answer cannot be both the context's and the weights' answer: check the inputs")
    return ctx.float().mean().item()


# ------------------------------------------------------------------------------- distance
def _untokenize(sentence: str) -> str:
    """Undo the spacing of a pre-tokenized corpus: "company , the" -> "company, the"."""
    s = re.sub(r" ([,.;:!?%)\]])", r"\1", sentence.strip())
    s = re.sub(r"([(\[$]) ", r"\1", s)
    return re.sub(r" ('s|n't|'re|'ll|'ve|'d)\b", r"\1", s)


def filler_pool(texts, fact_list=FACTS) -> list[str]:
    """Unrelated sentences to put between a statement and its question.

    ``texts`` (e.g. the Financial PhraseBank's sentences) with the spacing of a pre-tokenized corpus
    undone, duplicates removed (first occurrence kept, so the order is stable), and without every
    sentence that names a subject or an answer of ``fact_list``: a filler that mentions Helsinki
    would help the weights answer "The capital of Finland is", and the filler must be neutral.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of sentences, not one string")
    names = sorted({f.subject for f in fact_list} | {f.answer.strip() for f in fact_list}, key=len, reverse=True)
    named = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b") if names else None
    out, seen = [], set()
    for t in texts:
        s = _untokenize(str(t))
        if s and s not in seen and not (named and named.search(s)):
            seen.add(s)
            out.append(s)
    if not out:
        raise ValueError("no filler sentence left: every text names a fact's subject or answer (or texts is empty)")
    return out


def filler_text(tokenizer, pool: list[str], n_tokens: int, generator: torch.Generator) -> tuple[str, int]:
    """``(text, tokens)``: sentences drawn at random, without replacement, from ``pool`` and joined by
    spaces until they fill at least ``n_tokens`` tokens (``tokens`` is the count, the last sentence
    may overshoot). ``n_tokens=0`` gives ``("", 0)``."""
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 0:
        raise ValueError(f"n_tokens must be a non-negative int, got {n_tokens!r}")
    if n_tokens == 0:
        return "", 0
    if not pool:
        raise ValueError("the filler pool is empty")
    order = torch.randperm(len(pool), generator=generator).tolist()
    chosen, total = [], 0
    for i in order:
        chosen.append(pool[i])
        total += len(tokenizer(" " + pool[i], add_special_tokens=False)["input_ids"])
        if total >= n_tokens:
            text = " ".join(chosen)
            return text, len(tokenizer(" " + text, add_special_tokens=False)["input_ids"])
    raise ValueError(f"the filler pool holds only about {total} tokens, fewer than the {n_tokens} asked for")


def _crop_cache(cache, length: int) -> None:
    """Shorten a transformers cache to its first ``length`` tokens. ``crop`` with a negative number
    removes that many tokens in transformers 4.x and 5.x alike."""
    extra = cache.get_seq_length() - length
    if extra < 0:
        raise ValueError(f"the cache holds {cache.get_seq_length()} tokens, fewer than {length}")
    if extra:
        cache.crop(-extra)


def _boundary(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the first token that starts at or after character ``char``."""
    return next((i for i, (a, _) in enumerate(offsets) if a >= char), len(offsets))


def _forward(model, ids: list[int], cache, keep: int):
    """Logits of the last ``keep`` positions after ``ids`` (fed after ``cache``), float32 on the CPU."""
    device = next(model.parameters()).device
    kwargs = dict(input_ids=torch.tensor([ids], device=device), past_key_values=cache, use_cache=True)
    try:
        out = model(**kwargs, logits_to_keep=keep)
    except TypeError:  # an architecture without logits_to_keep
        out = model(**kwargs)
    return out.logits[0, -keep:].float().cpu(), out.past_key_values


@torch.no_grad()
def conflict_trials(model, tokenizer, fact_list: list[Fact], false_answers: list[str], distances,
                    pool: list[str], draws: int = 1, seed: int = 0, reworded: bool = False,
                    chat_template: str | bool = "off", progress=None, keep_prompts: bool = False) -> list[dict]:
    """Which memory wins when ``d`` tokens of unrelated text separate a false statement from its question.

    For fact ``i`` and filler draw ``k``, sentences of ``pool`` are taken in a random order (a
    generator seeded with ``seed + 7919 * k + i``) to fill the longest distance; the prompt for
    distance ``d`` is "<statement with the false answer> <the first filler sentences, at least d
    tokens> <cloze prompt>", so the distances of one draw share their filler (nested prefixes) and a
    run with fewer or shorter distances repeats the same prompts. Tokens are located by character
    offsets (:func:`cloze_encoding`, so any fast tokenizer, with or without BOS, and the chat-template
    policy ``chat_template`` work). The statement and the longest filler are read once; each
    distance then cuts the KV cache back to its prefix and reads the question and each answer
    (teacher forcing): the same scores as :func:`score_candidates` on the whole prompt, at a
    fraction of the cost (the tests check it).

    Returns one dict per trial: ``fact`` (index into ``fact_list``), ``draw``, ``distance``,
    ``tokens`` (the filler's actual length), ``context`` / ``weights`` (greedy decoding writes the
    false / the true answer) and ``margin`` (log p(false) - log p(true), nats). ``progress`` wraps
    the loop over facts and draws (e.g. ``wmlib.utils.progress``); ``keep_prompts=True`` adds the
    ``prompt`` (the text up to the answer) of each trial.
    """
    from . import lm

    if isinstance(fact_list, Fact) or len(fact_list) != len(false_answers) or not fact_list:
        raise ValueError(f"need a list of facts and one false answer per fact: got {len(fact_list) if not isinstance(fact_list, Fact) else 'one Fact'} "
                         f"facts and {len(false_answers)} answers")
    if isinstance(distances, int) or not distances or any(isinstance(d, bool) or not isinstance(d, int) or d < 0
                                                           for d in distances):
        raise ValueError(f"distances must be a non-empty list of non-negative ints (tokens), got {distances!r}")
    distances = sorted(set(distances), reverse=True)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive int, got {draws!r}")
    if isinstance(pool, str) or not pool:
        raise ValueError("pool must be a non-empty list of filler sentences")
    limit = lm.context_limit(model)
    loop = [(k, i) for k in range(draws) for i in range(len(fact_list))]
    rows = []
    for k, i in (progress(loop, desc="facts and draws") if progress else loop):
        fact, false = fact_list[i], false_answers[i]
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed + 7919 * k + i)).tolist()
        text = fact.statement(false, reworded=reworded)
        ends, n_est = [len(text)], 0
        for j in order:  # enough sentences for the longest distance, with a margin for merged tokens
            if n_est >= distances[0] + 16:
                break
            text += " " + pool[j]
            ends.append(len(text))
            n_est += len(tokenizer(" " + pool[j], add_special_tokens=False)["input_ids"])
        if n_est < distances[0] + 16:
            raise ValueError(f"the filler pool holds about {n_est} tokens, fewer than the {distances[0]} asked for")
        question_at = len(text) + 1
        text += " " + fact.prompt
        ids, offsets = cloze_encoding(tokenizer, text, chat_template)
        cuts = [_boundary(offsets, e) for e in ends]  # prompt length after the statement, after each sentence
        question = ids[_boundary(offsets, question_at - 1):]  # the space before the question starts it
        prefix_ends = {d: next(c for c in cuts if c - cuts[0] >= d) for d in distances}
        longest = max(prefix_ends.values())
        if limit is not None and longest + len(question) + 8 > limit:
            raise ValueError(f"distance {distances[0]} needs about {longest + len(question)} tokens, more than "
                             f"the model's context of {limit}")
        _, cache = _forward(model, ids[:longest], None, 1)
        for d in distances:  # longest first: the cache only ever gets shorter
            end = prefix_ends[d]
            result = {}
            for name, answer in (("context", false), ("weights", fact.answer)):
                _crop_cache(cache, end)
                cand = lm.encode(tokenizer, answer, prefix=False)
                logits, cache = _forward(model, question + cand[:-1], cache, len(cand))
                logp = torch.log_softmax(logits, -1)
                target = torch.tensor(cand)
                result[name] = (bool((logp.argmax(-1) == target).all()), float(logp.gather(-1, target[:, None]).sum()))
            _crop_cache(cache, end)
            rows.append(dict(fact=i, draw=k, distance=d, tokens=end - cuts[0], context=result["context"][0],
                             weights=result["weights"][0], margin=result["context"][1] - result["weights"][1]))
            if keep_prompts:
                rows[-1]["prompt"] = text[:ends[cuts.index(end)]] + text[question_at - 1:]
        del cache
    rows.sort(key=lambda r: (r["draw"], r["distance"], r["fact"]))
    return rows


# The recorded run of Chapter 2 (``wmlib/results/ch02_distance.json``, written by ``wmlib conflict``):
# its configuration is here, once, so that the chapter, the command that reproduces it and the test
# that the recording still matches the code all read the same values.
DISTANCE_RUN = dict(
    model="smollm2-135m", dtype="float32", chat_template="off", seed=0, filler="babi/1-20", facts=40,
    distances=[0, 16, 64, 256, 1024, 4096], draws=1,
)


def babi_filler_pool() -> list[str]:
    """The distinct sentences of the stories of all 20 bAbI tasks (1k, train), sorted, through
    :func:`filler_pool`: short, neutral sentences ("Mary moved to the bathroom.", "The box fits
    inside the chest.") to fill the distance between a statement and its question."""
    from .data import load_babi

    return filler_pool(sorted({s for task in range(1, 21) for ex in load_babi(task, "train") for s in ex.story}))


def known_facts(model, tokenizer, fact_list: list[Fact] | None = None, chat_template: str | bool = "off") -> list[Fact]:
    """The facts whose answer greedy decoding writes from the cloze prompt alone (closed book)."""
    fact_list = facts() if fact_list is None else fact_list
    s = score_candidates(model, tokenizer, [f.prompt for f in fact_list], [[f.answer] for f in fact_list],
                         chat_template=chat_template)
    return [f for f, k in zip(fact_list, s.greedy[:, 0].tolist()) if k]


def distance_sample(known: list[Fact], n: int, seed: int = 0) -> list[Fact]:
    """``n`` of the ``known`` facts, drawn without replacement (seeded) and kept in their order;
    all of them when there are no more than ``n``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if len(known) <= n:
        return list(known)
    pick = torch.randperm(len(known), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return [known[i] for i in pick.tolist()]


def distance_run(model=None, tokenizer=None, config: dict | None = None, progress=None) -> dict:
    """Run the distance experiment of ``config`` (default :data:`DISTANCE_RUN`; keys given override
    it) and return a JSON-ready dict: the configuration, the facts used (a seeded sample of the known
    ones), their false answers, and every trial of :func:`conflict_trials` (statements in the
    question's own words) under ``"trials"``, with versions and CPU time. With ``model=None`` the
    configuration's model is loaded in its dtype."""
    import platform
    import time

    import transformers

    from .models import load_causal_lm

    config = {**DISTANCE_RUN, **(config or {})}
    unknown = sorted(set(config) - set(DISTANCE_RUN))
    if unknown:
        raise ValueError(f"unknown configuration keys {unknown}; the run knows {sorted(DISTANCE_RUN)}")
    if config["filler"] != "babi/1-20":
        raise ValueError(f"unknown filler {config['filler']!r}; this run uses 'babi/1-20' (babi_filler_pool)")
    if model is None:
        model, tokenizer = load_causal_lm(config["model"], dtype=config["dtype"])
    start, cpu = time.time(), time.process_time()
    known = known_facts(model, tokenizer, chat_template=config["chat_template"])
    used = distance_sample(known, config["facts"], seed=config["seed"])
    false = counterfactual_answers(used, seed=config["seed"])
    pool = babi_filler_pool()
    out = dict(config=config, versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                                            python=platform.python_version()),
               n_known=len(known), facts=[[f.relation, f.subject] for f in used], false_answers=false,
               pool_size=len(pool))
    out["trials"] = conflict_trials(model, tokenizer, used, false, config["distances"], pool, draws=config["draws"],
                                    seed=config["seed"], chat_template=config["chat_template"], progress=progress)
    out["wall_seconds"], out["cpu_seconds"] = round(time.time() - start, 1), round(time.process_time() - cpu, 1)
    out["threads"] = torch.get_num_threads()
    return out
