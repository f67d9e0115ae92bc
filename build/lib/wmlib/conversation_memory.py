"""Memory for conversational agents (Chapter 13): four ways to decide what an assistant puts back
into its context window from a long conversation.

Every memory has the same interface::

    memory.add(turn)                                # remember one Turn(speaker, text, session)
    text = memory.context(query, budget_tokens=256)  # what to show the model before `query`
    memory.tokens_used                              # tokens of that text (never above the budget)

- :class:`BufferMemory` keeps the whole history; when it does not fit the budget, the oldest turns
  fall off, as they would off the front of a model's context window.
- :class:`WindowMemory` keeps the last ``k`` turns, whatever the budget.
- :class:`SummaryMemory` folds each finished session into a running summary (written by a
  summariser: :class:`ExtractiveSummariser` or :class:`LMSummariser`) and shows that summary
  followed by the current session's turns.
- :class:`RetrievalMemory` embeds every turn (a :class:`~wmlib.sentence_embeddings.SentenceEncoder`),
  keeps the vectors in a faiss index (Johnson et al. 2019), and shows the turns most similar to the
  query (retrieval-augmented generation, Lewis et al. 2020).

Contexts list the chosen turns in the order they were said, with a ``[Session n]`` line where a
session starts, so a model can tell an old address from a new one.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import torch

from .customer_dialogues import Turn

__all__ = [
    "Turn", "TokenCounter", "render_turns", "ConversationMemory", "BufferMemory", "WindowMemory",
    "SummaryMemory", "ExtractiveSummariser", "LMSummariser", "RetrievalMemory",
    "normalise", "contains_fact", "answer_prompt", "ask",
]


# --------------------------------------------------------------------------------- token counts
class TokenCounter:
    """Count the tokens of a text with a tokenizer (no special tokens), and cut a text to a budget."""

    def __init__(self, tokenizer):
        if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
            raise TypeError(f"TokenCounter needs a Hugging Face tokenizer, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def __call__(self, text: str) -> int:
        return len(self.ids(text)) if text else 0

    def truncate(self, text: str, budget: int) -> str:
        """The longest start of ``text`` that is at most ``budget`` tokens long."""
        ids = self.ids(text)
        n = min(len(ids), budget)
        while n > 0:
            cut = self.tokenizer.decode(ids[:n])
            if self(cut) <= budget:  # decoding and re-encoding can merge tokens differently
                return cut
            n -= 1
        return ""


def _as_counter(count_tokens) -> Callable[[str], int]:
    if isinstance(count_tokens, TokenCounter):
        return count_tokens
    if hasattr(count_tokens, "decode") and callable(count_tokens):  # a tokenizer
        return TokenCounter(count_tokens)
    if callable(count_tokens):
        return count_tokens
    raise TypeError(f"count_tokens must be a tokenizer, a TokenCounter or a function str -> int, "
                    f"got {type(count_tokens).__name__}")


def render_turns(turns: Sequence[Turn]) -> str:
    """One line per turn, ``Speaker: text``, with a ``[Session n]`` line where a session starts."""
    lines, session = [], None
    for t in turns:
        if t.session != session:
            lines.append(f"[Session {t.session}]")
            session = t.session
        lines.append(t.render())
    return "\n".join(lines)


def _check_budget(budget) -> None:
    if budget is None:
        return
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget_tokens must be a positive int (or None for no limit), got {budget!r}")


# ----------------------------------------------------------------------------- the interface
class ConversationMemory:
    """What every memory does: ``add(turn)``, ``context(query, budget_tokens) -> str``,
    ``tokens_used`` (tokens of the last context) and ``clear()``.

    ``count_tokens`` is the tokenizer of the model that will read the context (or a TokenCounter,
    or any function ``str -> int``): budgets are in that model's tokens.
    """

    name = "memory"

    def __init__(self, count_tokens):
        self.count = _as_counter(count_tokens)
        self.turns: list[Turn] = []
        self._tokens_used = 0

    def add(self, turn: Turn) -> None:
        if not isinstance(turn, Turn):
            raise TypeError(f"add() takes a Turn(speaker, text, session), got {type(turn).__name__}: {turn!r}")
        if self.turns and turn.session < self.turns[-1].session:
            raise ValueError(f"turns must arrive in order: session {turn.session} after session {self.turns[-1].session}")
        self.turns.append(turn)
        self._on_add(turn)

    def extend(self, turns: Sequence[Turn]) -> None:
        for t in turns:
            self.add(t)

    def clear(self) -> None:
        self.turns = []
        self._tokens_used = 0
        self._on_clear()

    def context(self, query: str, budget_tokens: int | None = None) -> str:
        """The text to put before ``query``: at most ``budget_tokens`` tokens (None: no limit)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        _check_budget(budget_tokens)
        text = self._context(query, budget_tokens)
        used = self.count(text)
        if budget_tokens is not None and used > budget_tokens:  # a bug in a subclass, not the caller's fault
            raise RuntimeError(f"{type(self).__name__} returned {used} tokens for a budget of {budget_tokens}")
        self._tokens_used = used
        return text

    @property
    def tokens_used(self) -> int:
        """Tokens of the text the last ``context`` call returned (0 before the first call)."""
        return self._tokens_used

    # subclasses override these
    def _on_add(self, turn: Turn) -> None:
        pass

    def _on_clear(self) -> None:
        pass

    def _context(self, query: str, budget: int | None) -> str:
        raise NotImplementedError

    def _most_recent_that_fit(self, turns: Sequence[Turn], budget: int | None, header: str = "") -> str:
        """``header`` followed by the longest run of the most recent ``turns`` that fits ``budget``."""
        chosen: list[Turn] = []
        text = header
        for t in reversed(turns):
            candidate = header + render_turns([t] + chosen)
            if budget is not None and self.count(candidate) > budget:
                break
            chosen.insert(0, t)
            text = candidate
        return text if chosen else (header if budget is None or self.count(header) <= budget else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.turns)} turns)"


class BufferMemory(ConversationMemory):
    """The whole history. Over budget, the oldest turns are dropped."""

    name = "buffer"

    def _context(self, query, budget):
        return self._most_recent_that_fit(self.turns, budget)


class WindowMemory(ConversationMemory):
    """The last ``k`` turns (and, within a budget, as many of them as fit)."""

    name = "window"

    def __init__(self, count_tokens, k: int):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k (the number of turns to keep) must be a positive int, got {k!r}")
        super().__init__(count_tokens)
        self.k = k

    def _context(self, query, budget):
        return self._most_recent_that_fit(self.turns[-self.k:], budget)


# ----------------------------------------------------------------------------------- summaries
class ExtractiveSummariser:
    """Keep, from the previous summary and the new turns, the customer sentences closest in
    meaning to ``focus`` (a description of what the notes must hold), up to ``max_tokens``, in
    the order they were said. Nothing is rewritten, so nothing is invented; what is not kept is lost.
    """

    DEFAULT_FOCUS = ("the customer's order number, the product they bought, their address, "
                     "the problem they reported, how to contact them and when to deliver")

    def __init__(self, encoder, count_tokens, max_tokens: int = 96, focus: str = DEFAULT_FOCUS,
                 speakers: Sequence[str] = ("Customer",)):
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        self.encoder, self.count, self.max_tokens = encoder, _as_counter(count_tokens), max_tokens
        self.focus, self.speakers = focus, tuple(speakers)
        self._focus_vec = encoder.encode([focus])[0]

    def __call__(self, summary: str, turns: Sequence[Turn]) -> str:
        lines = [ln for ln in summary.splitlines() if ln.strip()]
        lines += [t.text for t in turns if t.speaker in self.speakers]
        if not lines:
            return ""
        scores = self.encoder.encode(lines) @ self._focus_vec  # cosine similarity: unit vectors
        keep: list[int] = []
        for i in scores.argsort(descending=True).tolist():
            trial = "\n".join(lines[j] for j in sorted(keep + [i]))
            if self.count(trial) <= self.max_tokens:
                keep.append(i)
        return "\n".join(lines[j] for j in sorted(keep))


class LMSummariser:
    """Ask a chat model to rewrite the summary with the new turns folded in (greedy decoding,
    at most ``max_new_tokens``). What a small model writes must be checked: it may drop or
    invent facts (Chapter 13 measures how often)."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 80, chat_template: str = "auto"):
        from .lm import uses_chat_template

        uses_chat_template(tokenizer, chat_template)  # checks the policy now rather than at the first summary
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        self.chat_template = chat_template

    def request(self, summary: str, turns: Sequence[Turn]) -> str:
        return ("Update the notes about this customer with the new conversation. Keep every fact: "
                "order numbers, products, addresses, problems, contact and delivery preferences.\n\n"
                f"Notes so far:\n{summary or '(none)'}\n\nNew conversation:\n{render_turns(turns)}\n\n"
                "Updated notes:")

    def prompt(self, summary: str, turns: Sequence[Turn]) -> str:
        """The prompt as text, under the chat-template policy (:func:`wmlib.lm.render_prompt`)."""
        from .lm import render_prompt, uses_chat_template

        request = self.request(summary, turns)
        if not uses_chat_template(self.tokenizer, self.chat_template):
            return request
        return render_prompt(self.tokenizer, request, "", self.chat_template)

    def __call__(self, summary: str, turns: Sequence[Turn]) -> str:
        from .lm import encode, encode_prompt, greedy_generate, uses_chat_template

        request = self.request(summary, turns)
        ids = (encode_prompt(self.tokenizer, request, "", self.chat_template)
               if uses_chat_template(self.tokenizer, self.chat_template) else encode(self.tokenizer, request))
        new = greedy_generate(self.model, [ids], self.max_new_tokens, tokenizer=self.tokenizer)[0]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()


class SummaryMemory(ConversationMemory):
    """A running summary of the finished sessions, then the current session's turns.

    When the first turn of a new session arrives, the turns of the previous one are folded into
    the summary by ``summariser(summary, turns) -> str``. The context is the summary (cut to the
    budget if it is longer) followed by as many of the current session's most recent turns as fit.
    """

    name = "summary"
    HEADER = "Notes from earlier sessions:\n"

    def __init__(self, count_tokens, summariser: Callable[[str, Sequence[Turn]], str]):
        if not callable(summariser):
            raise TypeError(f"summariser must be callable as summariser(summary, turns) -> str, "
                            f"got {type(summariser).__name__}")
        super().__init__(count_tokens)
        self.summariser = summariser
        self.summary = ""
        self.pending: list[Turn] = []

    def _on_add(self, turn):
        if self.pending and turn.session != self.pending[-1].session:
            self.summary = self.summariser(self.summary, self.pending)
            if not isinstance(self.summary, str):
                raise TypeError(f"the summariser returned {type(self.summary).__name__}, not a str")
            self.pending = []
        self.pending.append(turn)

    def _on_clear(self):
        self.summary, self.pending = "", []

    def _context(self, query, budget):
        header = self.HEADER + self.summary.strip() + "\n\n" if self.summary.strip() else ""
        if budget is not None and header and self.count(header) > budget:
            cut = self.count.truncate(header, budget) if isinstance(self.count, TokenCounter) else ""
            return cut
        return self._most_recent_that_fit(self.pending, budget, header)


# ----------------------------------------------------------------------------------- retrieval
class RetrievalMemory(ConversationMemory):
    """Embed each turn; for a query, show the most similar turns that fit the budget (at most
    ``max_turns``), in the order they were said. The index is a faiss ``IndexFlatIP`` over unit
    vectors: inner product = cosine similarity, exact search."""

    name = "retrieval"

    def __init__(self, count_tokens, encoder, max_turns: int | None = None):
        import faiss

        if not hasattr(encoder, "encode") or not hasattr(encoder, "dim"):
            raise TypeError(f"encoder must be a SentenceEncoder (with .encode and .dim), got {type(encoder).__name__}")
        if max_turns is not None and (isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1):
            raise ValueError(f"max_turns must be a positive int or None, got {max_turns!r}")
        super().__init__(count_tokens)
        self.encoder, self.max_turns = encoder, max_turns
        self.index = faiss.IndexFlatIP(encoder.dim)

    def _on_add(self, turn):
        self.index.add(self.encoder.encode([turn.text]).numpy())

    def _on_clear(self):
        self.index.reset()

    def extend(self, turns: Sequence[Turn]) -> None:
        """Add many turns, embedding them in one batch."""
        turns = list(turns)
        for t in turns:
            if not isinstance(t, Turn):
                raise TypeError(f"extend() takes Turns, got {type(t).__name__}: {t!r}")
        seq = self.turns[-1:] + turns
        for a, b in zip(seq, seq[1:]):
            if b.session < a.session:
                raise ValueError(f"turns must arrive in order: session {b.session} after session {a.session}")
        if turns:
            self.index.add(self.encoder.encode([t.text for t in turns]).numpy())
            self.turns.extend(turns)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` turns most similar to ``query``: (turn index, cosine similarity), best first."""
        if not query.strip():
            raise ValueError("the query is empty: retrieval needs words to compare with the turns")
        k = min(k, self.index.ntotal)
        if k == 0:
            return []
        scores, idx = self.index.search(self.encoder.encode([query]).numpy(), k)
        return [(int(i), float(s)) for i, s in zip(idx[0], scores[0])]

    def _context(self, query, budget):
        chosen: list[int] = []
        text = ""
        limit = self.max_turns or len(self.turns)
        for i, _ in self.search(query, len(self.turns)):
            if len(chosen) == limit:
                break
            candidate = render_turns([self.turns[j] for j in sorted(chosen + [i])])
            if budget is None or self.count(candidate) <= budget:
                chosen.append(i)
                text = candidate
        return text


# ---------------------------------------------------------------------------- answers, checks
def normalise(text: str) -> str:
    """Lower case, letters and digits only: 'KX-48213.' and 'kx 48213' both become 'kx48213'."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def contains_fact(text: str, fact: str) -> bool:
    """Whether ``fact`` appears in ``text`` after :func:`normalise` (case, spaces, punctuation ignored)."""
    if not fact or not normalise(fact):
        raise ValueError(f"the fact to look for is empty after normalisation: {fact!r}")
    return normalise(fact) in normalise(text)


def answer_prompt(context: str, question: str) -> str:
    """The question-answering prompt: the memory's context, the question, and ``Answer:``."""
    head = f"Notes from a customer's conversations with a support assistant:\n{context}\n\n" if context else ""
    return f"{head}Question: {question}\nAnswer:"


def ask(model, tokenizer, context: str, question: str, max_new_tokens: int = 12, chat_template: str = "off") -> str:
    """The model's answer (greedy, stopped at the end of the line) to ``question`` given ``context``.

    ``chat_template`` ("off" by default: :func:`answer_prompt` as plain text; "auto"/"on": as one user
    turn of the model's chat template, the reply starting with ``Answer:``)."""
    from .lm import encode, encode_prompt, greedy_generate, uses_chat_template

    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    prompt = answer_prompt(context, question)
    if uses_chat_template(tokenizer, chat_template):
        body, _, tail = prompt.rpartition("\n")
        ids = encode_prompt(tokenizer, body, tail, chat_template)
    else:
        ids = encode(tokenizer, prompt)
    new = greedy_generate(model, [ids], max_new_tokens, tokenizer=tokenizer,
                          stop_token_ids=newline[-1:] if len(newline) == 1 else ())[0]
    return tokenizer.decode(new, skip_special_tokens=True).strip()
