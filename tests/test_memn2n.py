"""End-to-end memory networks: data, the model against a loop-by-loop reference, training."""

import pytest
import torch

from wmlib.data import BabiExample, load_babi
from wmlib.memn2n import (
    BabiVocab, MemN2N, TrainConfig, evaluate, hop_support, position_encoding, prepare_task,
    random_noise_time, split_train_val, code_position_encoding, tokenize, train_memn2n, vectorize,
)


@pytest.fixture(scope="module")
def task1():
    return prepare_task(1)


@pytest.fixture(scope="module")
def task2():
    return prepare_task(2)


# ------------------------------------------------------------------------------------------ data
def test_tokenize_and_vocab():
    assert tokenize("Mary moved to the bathroom.") == ["mary", "moved", "to", "the", "bathroom"]
    assert tokenize("Where is Mary? ") == ["where", "is", "mary"]
    ex = BabiExample(["John went to the hallway."], "Where is John?", "hallway", [0])
    vocab = BabiVocab.from_examples([ex])
    assert vocab.words[0] == "<nil>" and len(vocab) == 8  # nil + 7 words
    ids = vocab.encode(["john", "went"])
    assert vocab.decode(ids + [0]) == ["john", "went"]
    with pytest.raises(ValueError, match="'kitchen' is not in the vocabulary"):
        vocab.encode(["kitchen"])
    assert vocab.encode(["kitchen", "john"], strict=False) == vocab.encode(["john"])


def test_vectorize_keeps_the_most_recent_memories_and_marks_the_supporting_facts():
    story = [f"Mary went to room{i}." for i in range(6)]
    ex = BabiExample(story, "Where is Mary?", "room5", [5, 1])
    vocab = BabiVocab.from_examples([ex])
    data = vectorize([ex], vocab, memory_size=4)
    assert data.stories.shape == (1, 4, 4) and data.n_memories.tolist() == [4]
    assert vocab.decode(data.stories[0, 0]) == ["mary", "went", "to", "room2"]  # oldest kept first
    assert vocab.decode(data.stories[0, -1]) == ["mary", "went", "to", "room5"]
    assert data.supporting[0].tolist() == [False, False, False, True]  # fact 1 fell out of memory
    assert vocab.words[int(data.answers[0])] == "room5"
    with pytest.raises(ValueError, match="memory_size"):
        vectorize([ex], vocab, memory_size=0)


def test_real_task_shapes_and_supporting_facts(task2):
    vocab, train, test, tr, te = task2
    assert len(train) == len(test) == 1000
    assert train.stories.shape[1] == 50 and train.supporting.sum(-1).eq(2).all()  # task 2: two facts
    n = 7
    slots = train.supporting[n].nonzero().flatten().tolist()
    offset = len(tr[n].story) - int(train.n_memories[n])
    for slot, fact in zip(slots, sorted(tr[n].supporting)):
        assert vocab.decode(train.stories[n, slot]) == tokenize(tr[n].story[fact])
        assert slot + offset == fact
    a, b = split_train_val(train)
    assert len(a) == 900 and len(b) == 100 and torch.equal(b.answers, train.answers[900:])


# --------------------------------------------------------------------------- position encoding
def test_position_encoding_formula():
    l = position_encoding(4, 2)
    assert l.shape == (4, 2)
    for j in range(1, 5):
        for k in range(1, 3):
            assert l[j - 1, k - 1].item() == pytest.approx((1 - j / 4) - (k / 2) * (1 - 2 * j / 4))
    assert torch.allclose(position_encoding(1, 5)[0], torch.arange(1, 6) / 5)  # J = 1: l_k1 = k/d
    with pytest.raises(ValueError, match="positive"):
        position_encoding(0, 3)


def test_code_position_encoding_formula():
    l = code_position_encoding(5, 4)
    for j in range(1, 6):
        for k in range(1, 5):
            assert l[j - 1, k - 1].item() == pytest.approx(1 + 4 * (k - 2.5) * (j - 3) / 20)
    assert torch.allclose(l[2], torch.ones(4))  # the middle word weighs 1 in every dimension
    with pytest.raises(ValueError, match="positive"):
        code_position_encoding(3, 0)
    with pytest.raises(ValueError, match="encoding must be one of"):
        MemN2N(10, encoding="position_code")


# --------------------------------------------------------------------------------------- model
def naive_forward(model, copy, stories, questions):
    """The paper's equations, one question and one memory at a time."""
    E = model.embed[copy]
    T = model.temporal[copy] if model.temporal is not None else None
    out, atts = [], []

    J = stories.shape[-1] + (1 if T is not None else 0)  # the original code's fixed length, time word included
    code = code_position_encoding(J, model.dim)

    def embed(ids, M):
        ids = [i for i in ids.tolist() if i > 0]
        weights = {"position": position_encoding(max(1, len(ids)), model.dim), "position-code": code,
                   "bow": torch.ones(len(ids), model.dim)}[model.encoding]
        return sum(weights[j] * M[ids[j]] for j in range(len(ids)))

    def time(M, t):  # the time word: weight 1, or the last row of the original code's encoding
        return (code[J - 1] if model.encoding == "position-code" else 1) * M[t] if T is not None else 0

    for story, q in zip(stories, questions):
        mem = [s for s in story if (s > 0).any()]
        n = len(mem)
        u = embed(q, E[0])
        hop_att = []
        for k in range(1, model.hops + 1):
            m = torch.stack([embed(s, E[k - 1]) + (time(T[k - 1], n - 1 - i) if T is not None else 0) for i, s in enumerate(mem)])
            c = torch.stack([embed(s, E[k]) + (time(T[k], n - 1 - i) if T is not None else 0) for i, s in enumerate(mem)])
            if model.attend_empty:  # the empty slots: zero vectors
                empty = torch.zeros(model.memory_size - n, model.dim)
                m, c = torch.cat([m, empty]), torch.cat([c, empty])
            p = m @ u if model.linear[copy] else torch.softmax(m @ u, 0)
            hop_att.append(p)
            u = u + p @ c
        out.append(E[-1] @ u)
        atts.append([p[:n] for p in hop_att])
    return torch.stack(out), atts


@pytest.mark.parametrize("encoding, temporal, linear, attend_empty", [
    ("position", True, False, True), ("bow", False, False, True), ("position", True, True, True),
    ("bow", True, False, False), ("position", True, False, False), ("position-code", True, False, True),
    ("position-code", False, True, False)])
def test_forward_matches_the_equations(task2, encoding, temporal, linear, attend_empty):
    vocab, train, *_ = task2
    torch.manual_seed(0)
    model = MemN2N(len(vocab), dim=6, hops=3, memory_size=50, encoding=encoding, temporal=temporal, copies=2,
                   attend_empty=attend_empty)
    model.set_linear(linear)
    batch = train.subset(torch.arange(5))
    logits, att = model(batch.stories, batch.questions, return_attention=True)
    assert logits.shape == (2, 5, len(vocab)) and att.shape == (3, 2, 5, 50)
    for copy in range(2):
        want, want_att = naive_forward(model, copy, batch.stories, batch.questions)
        assert torch.allclose(logits[copy, :, 1:], want[:, 1:], atol=1e-4)
        n = int(batch.n_memories[0])
        assert torch.allclose(att[1, copy, 0, :n], want_att[0][1], atol=1e-5)
    real = batch.stories.ne(0).any(-1)
    assert (att[..., ~real] == 0).all()  # the attention on empty slots is not reported
    if not linear:
        total = att.sum(-1)
        if attend_empty:  # the rest went to the empty slots
            assert (total < 1).all() and (total > 0).all()
        else:
            assert torch.allclose(total, torch.ones(3, 2, 5), atol=1e-5)


def test_linear_start_toggle_per_copy(task1):
    vocab, train, *_ = task1
    model = MemN2N(len(vocab), copies=2, memory_size=10, attend_empty=False)
    batch = train.subset(torch.arange(4))
    model.set_linear([True, False])
    _, att = model(batch.stories, batch.questions, return_attention=True)
    assert torch.allclose(att[:, 1].sum(-1), torch.ones(3, 4), atol=1e-5)
    assert not torch.allclose(att[:, 0].sum(-1), torch.ones(3, 4), atol=1e-2)  # raw scores: no softmax
    model.set_linear(False)
    assert not model.linear.any()


def test_copies_select_and_parameter_count(task1):
    vocab, train, *_ = task1
    model = MemN2N(len(vocab), dim=20, hops=3, memory_size=10, copies=3)
    batch = train.subset(torch.arange(6))
    one = model.select(2)
    assert torch.allclose(one(batch.stories, batch.questions)[0], model(batch.stories, batch.questions)[2])
    assert model.n_parameters() == 4 * len(vocab) * 20 + 4 * 10 * 20  # K+1 tied matrices and tables
    assert MemN2N(len(vocab), 20, 1, 10, temporal=False).n_parameters() == 2 * len(vocab) * 20
    with pytest.raises(IndexError, match="3 copies"):
        model.select(3)


def test_bad_inputs_are_named(task1):
    vocab, train, *_ = task1
    model = MemN2N(len(vocab), memory_size=10)
    s, q = train.stories[:2], train.questions[:2]
    with pytest.raises(ValueError, match="integer word ids"):
        model(s.float(), q)
    with pytest.raises(ValueError, match="outside"):
        model(s + 100, q)
    with pytest.raises(ValueError, match=r"\(B, M, J\)"):
        model(s[0], q)
    with pytest.raises(ValueError, match="disagree on the batch"):
        model(s, train.questions[:3])
    with pytest.raises(ValueError, match="model holds 5"):
        MemN2N(len(vocab), memory_size=5)(s, q)
    with pytest.raises(ValueError, match="time must have shape"):
        model(s, q, time=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="time indices"):
        model(s, q, time=torch.full(s.shape[:-1], 10))
    with pytest.raises(ValueError, match="encoding"):
        MemN2N(10, encoding="lstm")
    with pytest.raises(ValueError, match="dim must be a positive int"):
        MemN2N(10, dim=0)
    with pytest.raises(ValueError, match="leading axis"):
        MemN2N(len(vocab), memory_size=10, copies=2)(s.expand(3, -1, -1, -1), q.expand(3, -1, -1))


def test_random_noise_time_follows_the_original_code():
    n = torch.tensor([3, 5, 1, 20])
    base = random_noise_time(n, 20, 49, 0.0)
    assert base[0, :4].tolist() == [2, 1, 0, 0] and base[1, :6].tolist() == [4, 3, 2, 1, 0, 0]
    g = torch.Generator().manual_seed(0)
    noisy = torch.stack([random_noise_time(n, 20, 49, 0.1, g) for _ in range(3000)])  # (draws, 4, 20)
    real = torch.arange(20) < n[:, None]
    assert (noisy >= base).all() and (noisy[:, ~real] == 0).all()
    assert (noisy[..., :-1] > noisy[..., 1:])[:, real[:, 1:]].all()  # still distinct and ordered in time
    # a story of 20 memories gets 0, 1 or 2 (= ceil(0.1 * 20)) empty ones, uniformly, placed at
    # random among the 21 or 22 time indices: the oldest memory moves back by the blanks after it
    shift = noisy[:, 3, 0] - 19
    assert set(shift.unique().tolist()) == {0, 1, 2}
    expected = (0 + 1 * 20 / 21 + 2 * 20 / 22) / 3  # E[blanks * P(the last index is a real memory)]
    assert abs(shift.float().mean().item() - expected) < 0.05
    assert ((noisy[:, 3] - base[3]) <= 2).all() and ((noisy[:, 0] - base[0]) <= 1).all()
    assert random_noise_time(n, 20, 3, 0.9, g).max() <= 3  # capped
    with pytest.raises(ValueError, match="rate"):
        random_noise_time(n, 20, 49, -0.1)


def test_train_config_is_the_books_and_checks_its_fields():
    cfg, joint = TrainConfig(), TrainConfig.joint()
    assert (cfg.encoding, cfg.hops, cfg.restarts, cfg.ls_patience, cfg.random_noise) == ("position-code", 3, 5, None, 0.1)
    assert (joint.dim, joint.epochs, joint.decay_every, joint.ls_max_epochs) == (50, 60, 15, 30)
    assert TrainConfig.joint(hops=1).hops == 1
    for bad, match in ((dict(epochs=0), "epochs"), (dict(hops=0), "hops"), (dict(encoding="lstm"), "encoding"),
                       (dict(random_noise=1.5), "random_noise"), (dict(ls_patience=0), "ls_patience"),
                       (dict(lr=0.0), "lr"), (dict(clip="none"), "clip"), (dict(restarts=True), "restarts")):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)


def test_hop_support():
    att = torch.tensor([[[0.1, 0.9], [0.8, 0.2]], [[0.6, 0.4], [0.3, 0.7]]])  # (hops=2, N=2, M=2)
    sup = torch.tensor([[False, True], [False, True]])
    assert hop_support(att, sup).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="matching"):
        hop_support(att, sup[:1])


# ------------------------------------------------------------------------------------ training
def test_a_short_training_run_learns_task_1(task1):
    vocab, train, test, *_ = task1
    tr, va = split_train_val(train)
    cfg = TrainConfig(restarts=2, epochs=20, linear_start=False, decay_every=10, seed=0)
    res = train_memn2n(tr, va, len(vocab), cfg)
    assert res.model.copies == 2 and not res.model.linear.any() and (res.ls_epochs == 0).all()
    ev = evaluate(res.model, test.subset(torch.arange(300)))
    assert ev["error"][res.best] < 0.1, ev["error"]  # chance: 5 of 6 rooms wrong
    assert ev["attention"].shape == (3, 2, 300, test.memory_size)
    assert len(res.history) == 20 and res.best_epoch[res.best] >= 0


def test_linear_start_ends_and_restores_the_softmax(task1):
    vocab, train, *_ = task1
    tr, va = split_train_val(train.subset(torch.arange(200)))
    cfg = TrainConfig(restarts=2, epochs=2, ls_max_epochs=3, seed=1)
    res = train_memn2n(tr, va, len(vocab), cfg)
    assert (res.ls_epochs == 3).all()  # a fixed schedule, as in the original code
    patient = train_memn2n(tr, va, len(vocab), TrainConfig(restarts=2, epochs=2, ls_max_epochs=3, ls_patience=1, seed=1))
    assert ((patient.ls_epochs >= 1) & (patient.ls_epochs <= 3)).all()
    assert res.history[0]["linear"].all() and not res.model.linear.any()
    assert (res.best_epoch >= res.ls_epochs).all()  # weights kept from the softmax phase only


def test_training_checks_its_inputs(task1):
    vocab, train, *_ = task1
    with pytest.raises(ValueError, match="config.memory_size"):
        train_memn2n(train, train, len(vocab), TrainConfig(memory_size=5))
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val(train, 1.5)


def test_load_babi_questions_have_supporting_facts_in_memory():
    for ex in load_babi(3, "test")[:50]:
        assert all(0 <= s < len(ex.story) for s in ex.supporting)
