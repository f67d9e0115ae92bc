"""Knowledge in the weights vs knowledge in the context (Chapter 2).

A small set of well-known facts, written as cloze prompts ("The capital of France is" -> " Paris"),
and the measurements the chapter makes with them:

- :func:`score_candidates` scores candidate continuations of each prompt (reading the prompt
  once): their log-probabilities and whether greedy decoding would produce them;
- :func:`counterfactual_prompt` builds "<false fact> <filler sentences> <cloze prompt>" prompts;
- :func:`override_rate` is the fraction of answers that follow the context rather than the weights.

Greedy decoding produces a continuation ``c_1..c_k`` exactly when, with the continuation fed in
(teacher forcing), the most likely next token at every step is the next ``c_i``. So one forward
pass over ``prompt + continuation`` tells us whether ``model.generate`` (greedy) would start with it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

__all__ = [
    "Fact", "RELATIONS", "FACTS", "facts", "counterfactual_answers", "ContinuationScore",
    "score_candidates", "score_continuations", "counterfactual_prompt", "override_rate",
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


def score_candidates(model, tokenizer, prompts: list[str], candidates: list[list[str]],
                     batch_size: int = 16) -> ContinuationScore:
    """Score every candidate continuation ``candidates[i][j]`` after ``prompts[i]``.

    Prompt and candidate are tokenized separately, the way ``generate`` sees them (the prompt with
    the tokenizer's special-token prefix, e.g. a BOS token, when it uses one), and scored by
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
    p_ids = [lm.encode(tokenizer, p) for p in prompts]
    c_ids = [[lm.encode(tokenizer, c, prefix=False) for c in cands] for cands in candidates]
    for prompt, ids, cands, row in zip(prompts, p_ids, candidates, c_ids):
        if not prompt or not ids or not all(row):
            raise ValueError(f"empty prompt or candidate: {prompt!r} -> {cands!r}")
    s = lm.score_candidates(model, p_ids, c_ids, pad_token_id=lm.pad_id(tokenizer), max_batch=batch_size)
    return ContinuationScore(s.logprob, s.greedy, s.n_tokens)


def score_continuations(model, tokenizer, prompts: list[str], continuations: list[str],
                        batch_size: int = 16) -> ContinuationScore:
    """Score ``continuations[i]`` after ``prompts[i]``: :func:`score_candidates` with one candidate
    each; returns ``(N,)`` tensors."""
    if isinstance(prompts, str) or isinstance(continuations, str):
        raise TypeError("prompts and continuations must be lists of strings, not single strings")
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations: pair them one to one")
    s = score_candidates(model, tokenizer, prompts, [[c] for c in continuations], batch_size=batch_size)
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
