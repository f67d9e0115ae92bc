"""Checkers for Chapter 13, "Memory for conversational agents"."""

from __future__ import annotations

from ._core import ExerciseFailure, call, expect_close, passed

__all__ = ["check_fact_recall", "check_pack_by_score", "check_overlap_memory"]


def check_fact_recall(fact_recall) -> bool:
    """Exercise 13.1: ``fact_recall(contexts, facts) -> float``, the share of contexts holding their fact."""
    from ..conversation_memory import contains_fact

    ex = "Exercise 13.1 (fact recall)"
    contexts = ["Customer: The order number is KX-48213.", "Customer: I moved to 5 mill road, Leeds",
                "Agent: noted", "Customer: please write to me by e-mail"]
    facts = ["kx 48213", "5 Mill Road", "Saturday", "email"]
    want = sum(contains_fact(c, f) for c, f in zip(contexts, facts)) / len(facts)
    got = call(ex, fact_recall, contexts, facts)
    if got == sum(contains_fact(c, f) for c, f in zip(contexts, facts)):
        raise ExerciseFailure(ex, f"you returned a count ({got}), not a share", "divide by the number of facts")
    exact = sum(f in c for c, f in zip(contexts, facts)) / len(facts)
    lower = sum(f.lower() in c.lower() for c, f in zip(contexts, facts)) / len(facts)
    if got in (exact, lower) and got != want:
        raise ExerciseFailure(ex, f"recall is {got!r}, expected {want!r}: 'KX-48213' and 'kx 48213' are the same fact",
                              "compare normalised strings: wmlib.conversation_memory.normalise drops case, spaces and "
                              "punctuation")
    expect_close(ex, got, want, "the recall")
    empty = call(ex, fact_recall, [], [])
    if empty not in (0, 0.0) and empty is not None:
        raise ExerciseFailure(ex, f"with no facts the recall should be 0 (or None), got {empty!r}")
    return passed(ex, "share of contexts that hold their fact, after normalisation")


def _reference_pack(lengths, scores, budget):
    chosen, used = [], 0
    for i in sorted(range(len(lengths)), key=lambda i: (-scores[i], -i)):
        if used + lengths[i] <= budget:
            chosen.append(i)
            used += lengths[i]
    return sorted(chosen)


def check_pack_by_score(pack_by_score) -> bool:
    """Exercise 13.2: ``pack_by_score(lengths, scores, budget) -> sorted list of indices``."""
    ex = "Exercise 13.2 (packing a budget)"
    cases = [
        ([10, 30, 5, 20, 8], [0.9, 0.8, 0.1, 0.7, 0.75], 39),  # the 30-token item does not fit after the first
        ([12, 12, 12], [0.2, 0.9, 0.5], 24),
        ([50, 5, 5], [0.9, 0.8, 0.7], 20),  # the best item alone is over the budget
        ([4, 4], [0.5, 0.5], 100),
    ]
    for lengths, scores, budget in cases:
        want = _reference_pack(lengths, scores, budget)
        got = call(ex, pack_by_score, list(lengths), list(scores), budget)
        if not isinstance(got, (list, tuple)) or not all(isinstance(i, int) for i in got):
            raise ExerciseFailure(ex, f"return a list of indices (ints), got {got!r}")
        got = list(got)
        if sum(lengths[i] for i in got) > budget:
            raise ExerciseFailure(ex, f"the chosen items {got} need {sum(lengths[i] for i in got)} tokens, over the "
                                      f"budget of {budget}")
        if sorted(got) == want and got != want:
            raise ExerciseFailure(ex, f"right items, wrong order: {got}",
                                  "return them in the order they were said (sorted indices), not by score")
        if got == want:
            continue
        stop_early, used = [], 0
        for i in sorted(range(len(lengths)), key=lambda i: -scores[i]):
            if used + lengths[i] > budget:
                break
            stop_early.append(i)
            used += lengths[i]
        if sorted(got) == sorted(stop_early):
            raise ExerciseFailure(ex, f"for lengths {lengths}, scores {scores}, budget {budget} you stopped at the "
                                      f"first item that did not fit (got {got}, expected {want})",
                                  "skip an item that does not fit and try the next one: a shorter one may fit")
        recent, used = [], 0
        for i in reversed(range(len(lengths))):
            if used + lengths[i] > budget:
                break
            recent.append(i)
            used += lengths[i]
        if sorted(got) == sorted(recent) and sorted(recent) != want:
            raise ExerciseFailure(ex, "you kept the most recent items, ignoring the scores")
        raise ExerciseFailure(ex, f"for lengths {lengths}, scores {scores}, budget {budget}: got {got}, expected {want}")
    return passed(ex, "best-scoring items first, skipping those that do not fit, returned in conversation order")


def check_overlap_memory(OverlapMemory) -> bool:
    """Exercise 13.3: a ConversationMemory that retrieves turns by the words they share with the query."""
    from ..conversation_memory import ConversationMemory, Turn, render_turns

    ex = "Exercise 13.3 (lexical retrieval)"
    if not (isinstance(OverlapMemory, type) and issubclass(OverlapMemory, ConversationMemory)):
        raise ExerciseFailure(ex, "OverlapMemory must be a class derived from wmlib.conversation_memory.ConversationMemory")

    def words(text):
        return len(text.split())

    turns = [Turn("Customer", "my order number is AB-123", 1), Turn("Agent", "thanks", 1),
             Turn("Customer", "the weather is grey", 2), Turn("Customer", "my new address is 5 Mill Road", 2),
             Turn("Agent", "your address is updated", 2), Turn("Customer", "send it to my new address please", 3)]
    try:
        memory = OverlapMemory(words)
    except Exception as err:
        raise ExerciseFailure(ex, f"OverlapMemory(count_tokens) raised {type(err).__name__}: {err}") from None
    for t in turns:
        memory.add(t)
    def overlap(a, b):
        import re

        wa, wb = set(re.findall(r"[a-z0-9]+", a.lower())), set(re.findall(r"[a-z0-9]+", b.lower()))
        return len(wa & wb)

    def reference(query, budget):
        scores = [overlap(query, t.text) for t in turns]
        order = sorted((i for i in range(len(turns)) if scores[i] > 0), key=lambda i: (-scores[i], -i))
        chosen = []
        for i in order:
            if budget is None or words(render_turns([turns[j] for j in sorted(chosen + [i])])) <= budget:
                chosen.append(i)
        return render_turns([turns[j] for j in sorted(chosen)])

    for query, budget in [("order number AB-123", None), ("where is the new address", 14), ("new address", 9),
                          ("zebra crossing", 50), ("grey weather", 3)]:
        try:
            got = memory.context(query, budget)
        except NotImplementedError:
            raise ExerciseFailure(ex, "not attempted yet.", "write the body of _context") from None
        except Exception as err:
            raise ExerciseFailure(ex, f"context({query!r}, {budget}) raised {type(err).__name__}: {err}") from None
        want = reference(query, budget)
        if got == want:
            continue
        if budget is not None and words(got) > budget:
            raise ExerciseFailure(ex, f"context({query!r}, {budget}) is {words(got)} tokens, over the budget")
        if query == "zebra crossing" and got:
            raise ExerciseFailure(ex, "a query that shares no word with any turn should get an empty context",
                                  "leave out turns whose overlap is 0")
        got_lines = [ln for ln in got.splitlines() if not ln.startswith("[Session")]
        want_lines = [ln for ln in want.splitlines() if not ln.startswith("[Session")]
        if sorted(got_lines) == sorted(want_lines):
            raise ExerciseFailure(ex, f"context({query!r}, {budget}) has the right turns in the wrong order",
                                  "render the chosen turns in the order they were said: render_turns(sorted turns)")
        raise ExerciseFailure(ex, f"context({query!r}, {budget}) returned\n{got!r}\nexpected\n{want!r}",
                              "score = number of distinct lower-case words shared with the query; best first, ties to "
                              "the more recent turn; skip turns that do not fit")
    return passed(ex, "turns ranked by shared words, packed within the budget, shown in conversation order")
