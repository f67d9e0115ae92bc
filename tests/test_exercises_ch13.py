"""Chapter 13 checkers: right answers pass, typical mistakes are named."""

import re

import pytest

from wmlib.conversation_memory import ConversationMemory, contains_fact, render_turns
from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch13


def right_recall(contexts, facts):
    return sum(contains_fact(c, f) for c, f in zip(contexts, facts)) / len(facts) if facts else 0.0


def test_fact_recall_checker(capsys):
    assert ch13.check_fact_recall(right_recall)
    assert capsys.readouterr().out.startswith("✓ Exercise 13.1")
    with pytest.raises(ExerciseFailure, match="count"):
        ch13.check_fact_recall(lambda c, f: sum(contains_fact(a, b) for a, b in zip(c, f)))
    with pytest.raises(ExerciseFailure, match="same fact"):
        ch13.check_fact_recall(lambda c, f: sum(b.lower() in a.lower() for a, b in zip(c, f)) / len(f) if f else 0)
    with pytest.raises(ExerciseFailure, match="raised ZeroDivisionError"):
        ch13.check_fact_recall(lambda c, f: sum(contains_fact(a, b) for a, b in zip(c, f)) / len(f))


def right_pack(lengths, scores, budget):
    chosen, used = [], 0
    for i in sorted(range(len(lengths)), key=lambda i: (-scores[i], -i)):
        if used + lengths[i] <= budget:
            chosen.append(i)
            used += lengths[i]
    return sorted(chosen)


def stop_early(lengths, scores, budget):
    chosen, used = [], 0
    for i in sorted(range(len(lengths)), key=lambda i: (-scores[i], -i)):
        if used + lengths[i] > budget:
            break
        chosen.append(i)
        used += lengths[i]
    return sorted(chosen)


def test_pack_checker():
    assert ch13.check_pack_by_score(right_pack)
    with pytest.raises(ExerciseFailure, match="stopped at the first item"):
        ch13.check_pack_by_score(stop_early)
    with pytest.raises(ExerciseFailure, match="wrong order"):
        ch13.check_pack_by_score(lambda l, s, b: sorted(right_pack(l, s, b), key=lambda i: -s[i]))
    with pytest.raises(ExerciseFailure, match="over the budget"):
        ch13.check_pack_by_score(lambda l, s, b: list(range(len(l))))
    with pytest.raises(ExerciseFailure, match="list of indices"):
        ch13.check_pack_by_score(lambda l, s, b: "0,1")


class RightOverlap(ConversationMemory):
    def _context(self, query, budget):
        def words(t):
            return set(re.findall(r"[a-z0-9]+", t.lower()))

        q = words(query)
        scores = [len(q & words(t.text)) for t in self.turns]
        chosen = []
        for i in sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], -i)):
            if budget is None or self.count(render_turns([self.turns[j] for j in sorted(chosen + [i])])) <= budget:
                chosen.append(i)
        return render_turns([self.turns[j] for j in sorted(chosen)])


class ScoreOrder(RightOverlap):
    def _context(self, query, budget):
        text = super()._context(query, budget)
        lines = [ln for ln in text.splitlines() if not ln.startswith("[Session")]
        return "\n".join(reversed(lines))


class KeepsZero(ConversationMemory):
    def _context(self, query, budget):
        return render_turns(self.turns[-1:]) if budget is None or budget > 10 else ""


class Stub(ConversationMemory):
    def _context(self, query, budget):
        raise NotImplementedError


def test_overlap_checker():
    assert ch13.check_overlap_memory(RightOverlap)
    with pytest.raises(ExerciseFailure, match="wrong order"):
        ch13.check_overlap_memory(ScoreOrder)
    with pytest.raises(ExerciseFailure, match="returned"):
        ch13.check_overlap_memory(KeepsZero)
    with pytest.raises(ExerciseFailure, match="not attempted"):
        ch13.check_overlap_memory(Stub)
    with pytest.raises(ExerciseFailure, match="derived from"):
        ch13.check_overlap_memory(object)


def test_unattempted_functions():
    def stub(*args):
        raise NotImplementedError

    for check in (ch13.check_fact_recall, ch13.check_pack_by_score):
        with pytest.raises(ExerciseIncomplete):
            check(stub)
