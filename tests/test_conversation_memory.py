"""wmlib.conversation_memory, wmlib.customer_dialogues and wmlib.sentence_embeddings.

Most tests count tokens as words and embed with a bag-of-words encoder, so they are instant and
their expectations can be worked out by hand; one test uses the real MiniLM encoder."""

import re
import zlib

import pytest
import torch

from wmlib.conversation_memory import (
    BufferMemory, ExtractiveSummariser, HybridMemory, RetrievalMemory, SummaryMemory, TokenCounter, Turn, WindowMemory,
    answer_prompt, contains_fact, normalise, render_turns,
)
from wmlib.customer_dialogues import (
    DEVELOPMENT_KINDS, FACT_KINDS, HELD_OUT_KINDS, SMALL_TALK, customer_service_dialogues, max_dialogues,
)


def words(text: str) -> int:
    return len(text.split())


class BagOfWords:
    """A stand-in SentenceEncoder: hashed word counts, unit length."""

    dim = 64

    def encode(self, texts):
        out = torch.zeros(len(texts), self.dim)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1
        return torch.nn.functional.normalize(out, dim=-1)


TURNS = [
    Turn("Customer", "my order number is AB-12345", 1),
    Turn("Agent", "thanks I see the order", 1),
    Turn("Customer", "the weather is grey today", 2),
    Turn("Agent", "sorry to hear that", 2),
    Turn("Customer", "please send letters to 5 Mill Road", 3),
    Turn("Agent", "noted", 3),
]


def join_all(summary, turns):
    return (summary + " " + " ".join(t.text for t in turns)).strip()


def memories():
    return [BufferMemory(words), WindowMemory(words, k=2), SummaryMemory(words, join_all),
            RetrievalMemory(words, BagOfWords()), HybridMemory(words, join_all, BagOfWords(), window=1, retrieve=2)]


@pytest.mark.parametrize("budget", [1, 3, 5, 8, 12, 20, 40, 1000])
def test_every_memory_respects_the_budget(budget):
    for memory in memories():
        memory.extend(TURNS)
        text = memory.context("what is my order number", budget)
        assert words(text) <= budget and memory.tokens_used == words(text), (memory, budget, text)


def test_buffer_keeps_everything_then_drops_the_oldest():
    m = BufferMemory(words)
    m.extend(TURNS)
    full = m.context("q")
    assert full == render_turns(TURNS) and "[Session 1]" in full and full.count("[Session") == 3
    cut = m.context("q", 12)
    assert "AB-12345" not in cut and cut.endswith("Agent: noted")


def test_window_drops_old_turns_whatever_the_budget():
    m = WindowMemory(words, k=2)
    m.extend(TURNS)
    text = m.context("what is my order number", None)
    assert text == "[Session 3]\nCustomer: please send letters to 5 Mill Road\nAgent: noted"
    assert "AB-12345" not in m.context("q", 10_000)


def test_summary_folds_finished_sessions():
    calls = []

    def summariser(summary, turns):
        calls.append([t.session for t in turns])
        return (summary + "\n" + turns[0].text).strip()

    m = SummaryMemory(words, summariser)
    m.extend(TURNS)
    assert calls == [[1, 1], [2, 2]]  # session 3 is still going on
    assert m.summary == "my order number is AB-12345\nthe weather is grey today"
    text = m.context("q")
    assert text.startswith(SummaryMemory.HEADER) and "AB-12345" in text and text.endswith("Agent: noted")
    assert m.context("q", 4) == "" or words(m.context("q", 4)) <= 4
    with pytest.raises(TypeError, match="summariser returned"):
        bad = SummaryMemory(words, lambda s, t: None)
        bad.extend(TURNS[:3])


def test_token_counter_counts_as_the_tokenizer_does():
    from wmlib.models import load_causal_lm

    tok = load_causal_lm("smollm2-135m")[1]
    counter = TokenCounter(tok)
    texts = [render_turns(d.turns) for d in customer_service_dialogues(3)] + ["", "a", " x\n\ny ", "KX-48213."]
    for t in texts:
        assert counter.ids(t) == tok(t, add_special_tokens=False)["input_ids"]


def test_summary_cut_to_budget_with_a_tokenizer():
    from wmlib.models import load_causal_lm

    tok = load_causal_lm("smollm2-135m")[1]
    counter = TokenCounter(tok)
    m = SummaryMemory(counter, lambda s, turns: " ".join(t.text for t in turns) * 5)
    m.extend(TURNS)
    text = m.context("q", 16)
    assert 0 < counter(text) <= 16 and text.startswith("Notes from")


def test_retrieval_returns_the_most_similar_turn_first_and_in_order():
    m = RetrievalMemory(words, BagOfWords())
    m.extend(TURNS)
    best, score = m.search("what is my order number", 1)[0]
    assert best == 0 and score > 0.5
    text = m.context("where do I want letters sent, Mill Road?", 12)
    assert "5 Mill Road" in text
    # several turns come back in the order they were said, not by score
    text = m.context("order number and letters to Mill Road", 40)
    assert text.index("AB-12345") < text.index("Mill Road")
    limited = RetrievalMemory(words, BagOfWords(), max_turns=1)
    limited.extend(TURNS)
    assert limited.context("order number", None).count("\n") == 1  # one session line and one turn


def test_retrieval_with_minilm_finds_the_address():
    from wmlib.sentence_embeddings import SentenceEncoder

    m = RetrievalMemory(words, SentenceEncoder.load("minilm-l6"))
    for t in TURNS:
        m.add(t)  # one at a time, as a live conversation would
    assert m.index.ntotal == len(TURNS)
    assert m.search("Where should we post the letters?", 1)[0][0] == 4


@pytest.mark.parametrize("make, call, error, match", [
    (lambda: BufferMemory(words), lambda m: m.add("hello"), TypeError, "takes a Turn"),
    (lambda: BufferMemory(words), lambda m: m.context("q", 0), ValueError, "positive int"),
    (lambda: BufferMemory(words), lambda m: m.context("q", 2.5), ValueError, "positive int"),
    (lambda: BufferMemory(words), lambda m: m.context("q", True), ValueError, "positive int"),
    (lambda: BufferMemory(words), lambda m: m.context(None, 5), TypeError, "query must be a str"),
    (lambda: BufferMemory(words), lambda m: m.extend([TURNS[4], TURNS[0]]), ValueError, "in order"),
    (lambda: RetrievalMemory(words, BagOfWords()), lambda m: m.context("  ", 5), ValueError, "query is empty"),
    (lambda: RetrievalMemory(words, BagOfWords()), lambda m: m.extend([TURNS[4], TURNS[0]]), ValueError, "in order"),
])
def test_bad_input_is_explained(make, call, error, match):
    m = make()
    with pytest.raises(error, match=match):
        call(m)


def test_bad_construction_is_explained():
    with pytest.raises(ValueError, match="positive int"):
        WindowMemory(words, k=0)
    with pytest.raises(TypeError, match="summariser must be callable"):
        SummaryMemory(words, "summarise please")
    with pytest.raises(TypeError, match="SentenceEncoder"):
        RetrievalMemory(words, encoder=None)
    with pytest.raises(TypeError, match="count_tokens"):
        BufferMemory(42)
    with pytest.raises(ValueError, match="some text"):
        Turn("Customer", "  ")
    with pytest.raises(ValueError, match="session"):
        Turn("Customer", "hi", 0)


def test_clear_forgets():
    for m in memories():
        m.extend(TURNS)
        m.context("order", 50)
        m.clear()
        assert m.turns == [] and m.tokens_used == 0 and m.context("order number", 50) == ""


def test_default_focus_names_no_question_kind():
    """The summariser's default focus must not list what the test questions ask (that would leak
    the test into the method)."""
    focus = ExtractiveSummariser.DEFAULT_FOCUS.lower()
    for word in ["order", "product", "address", "problem", "contact", "deliver", "phone", "card", "ticket",
                 "neighbour", "parcel", "present", "gift"]:
        assert word not in focus, word


def test_hybrid_memory_combines_notes_retrieval_and_recent_turns():
    m = HybridMemory(words, join_all, BagOfWords(), window=2, retrieve=1)
    m.extend(TURNS)
    text = m.context("what is my order number", None)
    notes, related, recent = text.split("\n\n")
    assert notes.startswith(HybridMemory.NOTES) and "AB-12345" in notes  # sessions 1-2 folded into notes
    assert related.startswith(HybridMemory.RELATED) and related.count("Customer:") + related.count("Agent:") == 1
    assert "AB-12345" in related  # the most similar turn, not one of the recent ones
    assert recent.startswith(HybridMemory.RECENT) and recent.endswith("Agent: noted") and "5 Mill Road" in recent
    for budget in [3, 8, 15, 25, 60]:
        assert words(m.context("what is my order number", budget)) <= budget
    with pytest.raises(ValueError, match="window"):
        HybridMemory(words, join_all, BagOfWords(), window=0)
    with pytest.raises(ValueError, match="room for retrieval"):
        HybridMemory(words, join_all, BagOfWords(), notes_share=0.8, window_share=0.5)


def test_ask_many_equals_ask_one_at_a_time():
    from transformers import LlamaConfig, LlamaForCausalLM

    from wmlib.conversation_memory import ask, ask_many
    from wmlib.models import load_causal_lm

    tok = load_causal_lm("smollm2-135m")[1]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
    items = [("", "What is my order number?"), (render_turns(TURNS), "Where do I live?"),
             (render_turns(TURNS[:2]), "What did I order?")]
    for policy in ["off", "on"]:
        many = ask_many(model, tok, items, max_new_tokens=6, chat_template=policy, max_batch=2)
        assert many == [ask(model, tok, c, q, max_new_tokens=6, chat_template=policy) for c, q in items]
        assert all("\n" not in a for a in many)
    assert ask_many(model, tok, []) == []
    with pytest.raises(TypeError, match="pair of strings"):
        ask_many(model, tok, ["just a question"])


def test_session_notes_equal_the_summary_memory_folded_to_the_end():
    from wmlib.conversation_memory import session_notes

    calls = []

    class Batched:
        def __call__(self, summary, turns):
            return join_all(summary, turns)

        def many(self, pairs):
            calls.append(len(pairs))
            return [self(*p) for p in pairs]

    short = TURNS[:4]
    for summariser in [join_all, Batched()]:
        notes = session_notes([TURNS, short], summariser)
        for turns, got in zip([TURNS, short], notes):
            m = SummaryMemory(words, join_all)
            m.extend(turns)
            assert got == join_all(m.summary, m.pending)  # the last session folded too
        assert session_notes([TURNS], summariser, last_session=1) == ["my order number is AB-12345 thanks I see the order"]
    assert calls == [2, 2, 1, 1]  # session s of every conversation at once; the short one stops after 2
    with pytest.raises(TypeError, match="conversation 0"):
        session_notes([[]], join_all)
    with pytest.raises(ValueError, match="last_session"):
        session_notes([TURNS], join_all, last_session=0)
    with pytest.raises(TypeError, match="callable"):
        session_notes([TURNS], "notes")


def test_lm_summariser_many_equals_one_at_a_time():
    from transformers import LlamaConfig, LlamaForCausalLM

    from wmlib.conversation_memory import LMSummariser
    from wmlib.models import load_causal_lm

    tok = load_causal_lm("smollm2-135m")[1]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
    for policy in ["off", "on"]:
        s = LMSummariser(model, tok, max_new_tokens=5, chat_template=policy)
        pairs = [("", TURNS[:2]), ("my order number is AB-12345", TURNS[2:4])]
        assert s.many(pairs) == [s(*p) for p in pairs]
    assert s.many([]) == []
    with pytest.raises(TypeError, match="pair 0"):
        s.many(["notes"])


def test_extractive_summariser_keeps_the_focus():
    s = ExtractiveSummariser(BagOfWords(), words, max_tokens=6, focus="order number")
    out = s("", TURNS)
    assert out == "my order number is AB-12345"  # agent turns are not candidates; budget of 6 words
    with pytest.raises(ValueError, match="max_tokens"):
        ExtractiveSummariser(BagOfWords(), words, max_tokens=0)


def test_fact_matching():
    assert normalise("KX-48213.") == normalise("kx 48213") == "kx48213"
    assert contains_fact("Your order is kx48213!", "KX-48213")
    assert not contains_fact("Your order is KX-48231", "KX-48213")
    with pytest.raises(ValueError, match="empty"):
        contains_fact("text", " - ")
    assert answer_prompt("", "Q?") == "Question: Q?\nAnswer:"
    assert answer_prompt("ctx", "Q?").endswith("ctx\n\nQuestion: Q?\nAnswer:")


# -------------------------------------------------------------------------------- dialogues
def test_dialogues_are_seeded_and_hold_their_facts():
    a, b = customer_service_dialogues(30, seed=3), customer_service_dialogues(30, seed=3)
    assert [d.turns for d in a] == [d.turns for d in b]
    assert [d.turns for d in a] != [d.turns for d in customer_service_dialogues(30, seed=4)]
    assert [d.turns for d in customer_service_dialogues(7, seed=3)] == [d.turns for d in a[:7]]  # a prefix
    assert len({d.customer for d in a}) == 30
    assert set(DEVELOPMENT_KINDS) | set(HELD_OUT_KINDS) == set(FACT_KINDS) and not set(DEVELOPMENT_KINDS) & set(HELD_OUT_KINDS)
    for d in a:
        assert d.sessions == 4 and sorted(q.kind for q in d.questions) == sorted(FACT_KINDS)
        for q in d.questions:
            # each answer sits in exactly one turn, so "the fact is in the context" is a substring test
            holders = [t for t in d.turns if contains_fact(t.text, q.answer)]
            assert len(holders) == 1, (d.customer, q, holders)
            assert holders[0].speaker == ("Agent" if q.kind == "ticket" else "Customer")
            if q.distractor:
                assert sum(contains_fact(t.text, q.distractor) for t in d.turns) == 1
                assert normalise(q.distractor) != normalise(q.answer)
        small = [t.text for t in d.turns if any(t.text == c for c, _ in SMALL_TALK)]
        assert len(small) == len(set(small)) >= 8  # small talk never repeats within a conversation
    with pytest.raises(ValueError, match="between 1 and"):
        customer_service_dialogues(0)
    with pytest.raises(ValueError, match="between 1 and"):
        customer_service_dialogues(max_dialogues() + 1)
    with pytest.raises(ValueError, match="small_talk"):
        customer_service_dialogues(2, small_talk=(2, 9))


# ------------------------------------------------------------------------- sentence embeddings
def test_sentence_encoder_is_padding_independent():
    from wmlib.sentence_embeddings import SentenceEncoder, mean_pool

    enc = SentenceEncoder.load("minilm-l6")
    alone = enc.encode(["my new address is 5 Mill Road"])
    assert torch.equal(enc.encode(["my new address is 5 Mill Road"]), alone)  # remembered
    enc._cache.clear()  # embed the batch afresh: padding must not change the vector
    batch = enc.encode(["hi", "my new address is 5 Mill Road", "a much longer sentence " * 10])
    assert batch.shape == (3, 384) and torch.allclose(batch.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(alone[0], batch[1], atol=1e-5)
    similar = enc.encode(["Where do you live?", "What is your address?", "I like green tea."])
    assert similar[0] @ similar[1] > similar[0] @ similar[2]
    with pytest.raises(TypeError, match="list of strings"):
        enc.encode("one string")
    with pytest.raises(ValueError, match="empty"):
        enc.encode(["fine", ""])
    h, m = torch.ones(2, 3, 4), torch.tensor([[1, 1, 0], [1, 0, 0]])
    h[0, 2] = 100.0  # a padding position: must not count
    assert torch.allclose(mean_pool(h, m), torch.ones(2, 4))
    with pytest.raises(ValueError, match="mean_pool needs"):
        mean_pool(h, m[:, :2])
