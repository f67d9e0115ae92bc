"""wmlib.student: building, distilling, timing and caching a student (Chapter 11)."""

from dataclasses import replace

import pytest
import torch

from wmlib.data import LabelledTexts
from wmlib.finetune import SentenceClassifier, count_parameters, evaluate, save_classifier, tokenize
from wmlib.student import (StudentRecipe, compare_latency, distill, distill_sst2, load_student, make_student,
                           study_recipes)


@pytest.fixture(scope="module")
def tokenizer():
    from wmlib.models import load_encoder

    return load_encoder("minilm-l6")[1]


def tiny_classifier(vocab_size, layers=2, seed=0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    return SentenceClassifier(BertModel(cfg, add_pooling_layer=False), num_labels=2).eval()


def toy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for _ in range(n):
        y = int(torch.randint(2, (1,), generator=g))
        texts.append(f"the film is {'wonderful' if y else 'terrible'}")
        labels.append(y)
    return LabelledTexts(texts, labels, ("negative", "positive"), "toy")


def test_make_student_keeps_layers_prunes_and_leaves_the_teacher_alone(tokenizer):
    teacher = tiny_classifier(tokenizer.vocab_size, layers=3)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = make_student(teacher, [0, 2], ffn=16, tokenizer=tokenizer, texts=["a good film", "a bad one"])
    assert len(student.encoder.encoder.layer) == 2
    assert student.encoder.encoder.layer[0].intermediate.dense.out_features == 16
    assert torch.equal(student.encoder.encoder.layer[1].attention.self.query.weight,
                       teacher.encoder.encoder.layer[2].attention.self.query.weight)
    assert count_parameters(student) < count_parameters(teacher)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert student(**tokenize(tokenizer, ["fine"])).shape == (1, 2)
    with pytest.raises(ValueError, match="layers"):
        make_student(teacher, [3])


def test_distillation_alone_teaches_the_student(tokenizer):
    """With alpha=0 the labels are never read: a student trained on wrong labels but the right
    teacher logits still learns the task."""
    data = toy(96)
    teacher_logits = torch.tensor([[-3.0, 3.0] if y else [3.0, -3.0] for y in data.labels])
    wrong = LabelledTexts(data.texts, [0] * len(data), data.label_names, "wrong labels")
    student = tiny_classifier(tokenizer.vocab_size, layers=1, seed=1)
    history = distill(student, tokenizer, wrong, teacher_logits, T=2.0, alpha=0.0, epochs=4, batch_size=16, lr=3e-3)
    assert history.steps == 4 * 6 and history.losses[-1] < history.losses[0]
    assert evaluate(student, tokenizer, toy(64, seed=1)).accuracy > 0.95


def test_distill_rejects_mismatched_teacher_logits(tokenizer):
    data = toy(8)
    student = tiny_classifier(tokenizer.vocab_size, layers=1)
    with pytest.raises(ValueError, match="rows"):
        distill(student, tokenizer, data, torch.zeros(7, 2))
    with pytest.raises(ValueError, match="classes"):
        distill(student, tokenizer, data, torch.zeros(8, 3))
    with pytest.raises(ValueError, match="shape"):
        distill(student, tokenizer, data, torch.zeros(8))
    with pytest.raises(ValueError, match="temperature"):
        distill(student, tokenizer, data, torch.zeros(8, 2), T=0.0)


def test_compare_latency_reports_wall_and_cpu_time(tokenizer):
    a, b = tiny_classifier(tokenizer.vocab_size, 2), tiny_classifier(tokenizer.vocab_size, 1)
    out = compare_latency({"a": a, "b": b}, tokenizer, ["a good film"] * 8, batch_size=4, repeats=3, warmup=1,
                          rounds=2)
    assert set(out) == {"a", "b"}
    # one thread (the default): the CPU time is real work, and cannot exceed the wall time by more
    # than the clocks' granularity
    assert all(v["wall_ms"] > 0 and 0 < v["cpu_ms"] <= 1.2 * v["wall_ms"] + 1.0 for v in out.values()), out
    with pytest.raises(ValueError, match="batch_size"):
        compare_latency({"a": a}, tokenizer, ["x"] * 3, batch_size=4)
    with pytest.raises(ValueError, match="empty"):
        compare_latency({}, tokenizer, ["x"])
    with pytest.raises(ValueError, match="threads"):
        compare_latency({"a": a}, tokenizer, ["x"] * 4, threads=0)


def test_compare_latency_times_in_the_threads_asked_for_and_restores_them(tokenizer):
    seen = []
    a = tiny_classifier(tokenizer.vocab_size, 1)
    a.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    compare_latency({"a": a}, tokenizer, ["a good film"] * 2, batch_size=1, repeats=1, warmup=0, rounds=1)
    assert seen and set(seen) == {1} and torch.get_num_threads() == before
    seen.clear()
    compare_latency({"a": a}, tokenizer, ["a good film"] * 2, batch_size=1, repeats=1, warmup=0, rounds=1,
                    threads=None)
    assert set(seen) == {before}


def test_recipes_keys_and_the_study():
    base = StudentRecipe()
    assert base.key() != replace(base, T=2.0).key() != replace(base, alpha=1.0).key()
    recipes = study_recipes(base, [1, 4])
    assert list(recipes) == ["labels only", "T=1", "T=4"]
    assert recipes["labels only"].alpha == 1.0 and recipes["T=4"].T == 4.0 and recipes["T=4"].alpha == base.alpha
    with pytest.raises(ValueError, match="cache"):
        distill_sst2(base, cache="maybe")


def test_save_and_load_a_student(tmp_path, monkeypatch):
    from wmlib.models import load_encoder

    monkeypatch.setenv("WMLIB_CACHE_DIR", str(tmp_path))
    encoder, tok = load_encoder("minilm-l6")
    torch.manual_seed(0)
    student = make_student(SentenceClassifier(encoder, 2), [0, 5], ffn=64).eval()
    path = save_classifier(student, tmp_path / "s", {"model": "minilm-l6", "num_labels": 2, "layers": [0, 5],
                                                      "ffn": 64})
    again, _, meta = load_student(path)
    enc = tokenize(tok, ["a quietly moving film", "dull"])
    assert torch.allclose(student(**enc), again(**enc), atol=1e-6)
    assert meta["layers"] == [0, 5]
    assert not StudentRecipe().cached()  # the cache is the empty tmp_path
    with pytest.raises(FileNotFoundError, match="distill-sst2"):
        load_student(tmp_path / "nothing")
