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
    "HybridMemory", "session_notes", "normalise", "contains_fact", "answer_prompt", "ask", "ask_many",
]


# --------------------------------------------------------------------------------- token counts
class TokenCounter:
    """Count the tokens of a text with a tokenizer (no special tokens), and cut a text to a budget."""

    def __init__(self, tokenizer):
        if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
            raise TypeError(f"TokenCounter needs a Hugging Face tokenizer, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        # a fast tokenizer's Rust backend gives the same ids without the Python wrapper's overhead
        # (memories count thousands of candidate contexts)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._backend = backend if backend is not None and hasattr(backend, "encode") else None

    def ids(self, text: str) -> list[int]:
        if self._backend is not None:
            return self._backend.encode(text, add_special_tokens=False).ids
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

    The default focus describes customer-service notes in general, without naming any kind of
    fact a test asks about: a focus that lists the test's questions would leak the test into the
    method (Chapter 13 measures what such a focus gains on the questions it names, and loses on
    the others).
    """

    DEFAULT_FOCUS = ("facts the customer told us about themselves, their purchase and their requests, "
                     "which we must remember in later conversations")

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
        return ("Update the notes about this customer with the new conversation. Keep every fact the customer "
                "or the assistant stated that we may need in later conversations.\n\n"
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
        return self.many([(summary, turns)])[0]

    def many(self, pairs: Sequence[tuple[str, Sequence[Turn]]]) -> list[str]:
        """``self(summary, turns)`` for many ``(summary, turns)`` pairs, generated in batches: the
        same notes, in a fraction of the time."""
        from .lm import encode, encode_prompt, greedy_generate, uses_chat_template

        chat = uses_chat_template(self.tokenizer, self.chat_template)
        prompts = []
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise TypeError(f"pair {i} must be (summary: str, turns), got {pair!r}")
            request = self.request(*pair)
            prompts.append(encode_prompt(self.tokenizer, request, "", self.chat_template) if chat
                           else encode(self.tokenizer, request))
        if not prompts:
            return []
        new = greedy_generate(self.model, prompts, self.max_new_tokens, tokenizer=self.tokenizer)
        return [self.tokenizer.decode(toks, skip_special_tokens=True).strip() for toks in new]


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


def session_notes(conversations: Sequence[Sequence[Turn]], summariser, last_session: int | None = None) -> list[str]:
    """The notes a :class:`SummaryMemory` would hold for each conversation (a list of turns) once
    every session up to ``last_session`` (default: all) has been folded in, the last one included.

    Sessions are folded in the same order as in the memory; all conversations' session ``s`` at
    once (``summariser.many`` when it has one, as :class:`LMSummariser` does)."""
    if not callable(summariser):
        raise TypeError(f"summariser must be callable as summariser(summary, turns) -> str, got {type(summariser).__name__}")
    if last_session is not None and (isinstance(last_session, bool) or not isinstance(last_session, int)
                                     or last_session < 1):
        raise ValueError(f"last_session must be a positive int or None, got {last_session!r}")
    by_session = []
    for i, turns in enumerate(conversations):
        turns = list(turns)
        if not turns or not all(isinstance(t, Turn) for t in turns):
            raise TypeError(f"conversation {i} must be a non-empty list of Turns")
        sessions: dict[int, list[Turn]] = {}
        for t in turns:
            if last_session is None or t.session <= last_session:
                sessions.setdefault(t.session, []).append(t)
        by_session.append([sessions[s] for s in sorted(sessions)])
    notes = [""] * len(by_session)
    many = getattr(summariser, "many", None)
    for step in range(max((len(s) for s in by_session), default=0)):
        todo = [i for i, s in enumerate(by_session) if step < len(s)]
        pairs = [(notes[i], by_session[i][step]) for i in todo]
        out = many(pairs) if many is not None else [summariser(*p) for p in pairs]
        for i, text in zip(todo, out):
            if not isinstance(text, str):
                raise TypeError(f"the summariser returned {type(text).__name__}, not a str")
            notes[i] = text
    return notes


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
        self._query_vectors: dict[str, object] = {}  # a query asked again is not embedded again

    def _on_add(self, turn):
        self.index.add(self.encoder.encode([turn.text]).numpy())

    def _on_clear(self):
        self.index.reset()
        self.__dict__.pop("_lengths", None)

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
        if query not in self._query_vectors:
            self._query_vectors[query] = self.encoder.encode([query]).numpy()
        scores, idx = self.index.search(self._query_vectors[query], k)
        return [(int(i), float(s)) for i, s in zip(idx[0], scores[0])]

    def pack(self, query: str, budget: int | None, exclude: set | frozenset = frozenset(),
             max_turns: int | None = None) -> list[int]:
        """Indices (in conversation order) of the turns most similar to ``query`` that fit
        ``budget`` when rendered together: best first, a turn that does not fit is skipped and the
        next one tried; at most ``max_turns`` (default: the memory's own), none from ``exclude``."""
        chosen: list[int] = []
        limit = max_turns or self.max_turns or len(self.turns)
        used = 0  # tokens of the chosen turns, each counted alone
        for i, _ in self.search(query, len(self.turns)):
            if len(chosen) == limit:
                break
            if i in exclude:
                continue
            if budget is not None:
                alone = self._turn_tokens(i)
                # a quick lower bound first (turns counted alone, one token of slack per line for
                # merges at the joins); the exact count of the rendered text decides
                if used + alone - len(chosen) - 1 > budget:
                    continue
                if self.count(render_turns([self.turns[j] for j in sorted(chosen + [i])])) > budget:
                    continue
                used += alone
            chosen.append(i)
        return sorted(chosen)

    def _turn_tokens(self, i: int) -> int:
        cache = self.__dict__.setdefault("_lengths", {})
        if i not in cache:
            cache[i] = self.count(self.turns[i].render())
        return cache[i]

    def _context(self, query, budget):
        return render_turns([self.turns[j] for j in self.pack(query, budget)])


# ------------------------------------------------------------------------------------- hybrid
class HybridMemory(ConversationMemory):
    """The three ideas together, as practical assistants combine them: running notes on the
    finished sessions (a summariser, as in :class:`SummaryMemory`), the turns most similar to the
    query (as in :class:`RetrievalMemory`), and the last ``window`` turns (as in
    :class:`WindowMemory`), in that order.

    Within a budget, the notes get at most ``notes_share`` of it and the recent turns at most
    ``window_share``; retrieval fills what is left with turns not already among the recent ones.
    Without a budget: all the notes, the last ``window`` turns and at most ``retrieve`` retrieved turns.
    """

    name = "hybrid"
    NOTES = "Notes from earlier sessions:\n"
    RELATED = "Related earlier turns:\n"
    RECENT = "Most recent turns:\n"

    def __init__(self, count_tokens, summariser: Callable[[str, Sequence[Turn]], str], encoder, window: int = 4,
                 retrieve: int = 4, notes_share: float = 0.35, window_share: float = 0.25):
        for name, v in (("window", window), ("retrieve", retrieve)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name, v in (("notes_share", notes_share), ("window_share", window_share)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {v!r}")
        if notes_share + window_share > 1:
            raise ValueError(f"notes_share + window_share must leave room for retrieval (<= 1), got "
                             f"{notes_share} + {window_share}")
        super().__init__(count_tokens)
        self.notes = SummaryMemory(self.count, summariser)
        self.retrieval = RetrievalMemory(self.count, encoder)
        self.window, self.retrieve = window, retrieve
        self.notes_share, self.window_share = notes_share, window_share

    def _on_add(self, turn):
        self.notes.add(turn)
        self.retrieval.add(turn)

    def extend(self, turns: Sequence[Turn]) -> None:
        turns = list(turns)
        for t in turns:
            if not isinstance(t, Turn):
                raise TypeError(f"extend() takes Turns, got {type(t).__name__}: {t!r}")
            self.notes.add(t)
        self.retrieval.extend(turns)
        self.turns.extend(turns)

    def _on_clear(self):
        self.notes.clear()
        self.retrieval.clear()

    def _context(self, query, budget):
        def share(fraction):
            return None if budget is None else int(budget * fraction)

        summary = self.notes.summary.strip()
        notes = self.NOTES + summary if summary else ""
        if notes and budget is not None and self.count(notes) > share(self.notes_share):
            cut = share(self.notes_share)
            notes = self.count.truncate(notes, cut) if isinstance(self.count, TokenCounter) and cut else ""
        first_recent = max(0, len(self.turns) - self.window)
        recent_budget = share(self.window_share)
        recent: list[int] = []
        for j in range(len(self.turns) - 1, first_recent - 1, -1):
            trial = self.RECENT + render_turns([self.turns[i] for i in [j] + recent])
            if recent_budget is not None and self.count(trial) > recent_budget:
                break
            recent.insert(0, j)

        def assemble(related):
            parts = [notes] if notes else []
            if related:
                parts.append(self.RELATED + render_turns([self.turns[i] for i in related]))
            if recent:
                parts.append(self.RECENT + render_turns([self.turns[i] for i in recent]))
            return "\n\n".join(parts)

        base = self.count(assemble([]))
        left = None if budget is None else budget - base - self.count(self.RELATED) - 2
        related = [] if left is not None and left < 1 else self.retrieval.pack(
            query, left, exclude=set(range(first_recent, len(self.turns))), max_turns=self.retrieve)
        text = assemble(related)
        while related and budget is not None and self.count(text) > budget:  # merges at the joins: drop one
            related = [] if len(related) == 1 else self.retrieval.pack(
                query, left, exclude=set(range(first_recent, len(self.turns))), max_turns=len(related) - 1)
            text = assemble(related)
        return text if budget is None or self.count(text) <= budget else (
            self.count.truncate(text, budget) if isinstance(self.count, TokenCounter) else "")


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
    return ask_many(model, tokenizer, [(context, question)], max_new_tokens, chat_template)[0]


def ask_many(model, tokenizer, items: Sequence[tuple[str, str]], max_new_tokens: int = 12,
             chat_template: str = "off", max_batch: int = 16) -> list[str]:
    """:func:`ask` for many ``(context, question)`` pairs at once, generated in batches of similar
    length (:func:`wmlib.lm.greedy_generate`): the same answers, a fraction of the time. Each answer
    is cut at its first line break (found in the decoded text, so it does not matter whether the
    tokenizer writes a newline as a token of its own)."""
    from .lm import encode, encode_prompt, greedy_generate, uses_chat_template

    items = list(items)
    for i, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise TypeError(f"item {i} must be a pair of strings (context, question), got {item!r}")
    if not items:
        return []
    chat = uses_chat_template(tokenizer, chat_template)
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    prompts = []
    for context, question in items:
        prompt = answer_prompt(context, question)
        if chat:
            body, _, tail = prompt.rpartition("\n")
            prompts.append(encode_prompt(tokenizer, body, tail, chat_template))
        else:
            prompts.append(encode(tokenizer, prompt))
    new = greedy_generate(model, prompts, max_new_tokens, tokenizer=tokenizer, max_batch=max_batch,
                          stop_token_ids=newline[-1:] if len(newline) == 1 else ())
    return [tokenizer.decode(toks, skip_special_tokens=True).strip().split("\n")[0].strip() for toks in new]
