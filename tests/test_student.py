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
    assert all(len(v["cpu_calls_ms"]) == len(v["wall_calls_ms"]) == 3 * 2 for v in out.values()), out
    with pytest.raises(ValueError, match="batch_size"):
        compare_latency({"a": a}, tokenizer, ["x"] * 3, batch_size=4)
    with pytest.raises(ValueError, match="empty"):
        compare_latency({}, tokenizer, ["x"])
    with pytest.raises(ValueError, match="threads"):
        compare_latency({"a": a}, tokenizer, ["x"] * 4, threads=0)


def test_speedup_pairs_calls_and_refuses_bad_input():
    from wmlib.student import speedup

    t = {"slow": {"cpu_calls_ms": [4.0, 8.0, 6.0, 40.0], "wall_calls_ms": [4.0, 8.0, 6.0, 40.0]},
         "fast": {"cpu_calls_ms": [1.0, 2.0, 2.0, 10.0], "wall_calls_ms": [2.0, 4.0, 3.0, 20.0]}}
    cpu = speedup(t, "slow", "fast")  # paired ratios 4, 4, 3, 4: median 4
    assert cpu.value == pytest.approx(4.0) and cpu.low <= 4.0 <= cpu.high and cpu.n == 4
    assert speedup(t, "slow", "fast", kind="wall").value == pytest.approx(2.0)
    assert speedup(t, "fast", "slow").value == pytest.approx(0.25)
    with pytest.raises(ValueError, match="kind"):
        speedup(t, "slow", "fast", kind="gpu")
    with pytest.raises(KeyError, match="timed"):
        speedup(t, "slow", "nope")
    with pytest.raises(ValueError, match="same"):
        speedup({**t, "short": {"cpu_calls_ms": [1.0]}}, "slow", "short")
    with pytest.raises(ValueError, match="no measurable"):
        speedup({**t, "zero": {"cpu_calls_ms": [0.0, 1.0, 1.0, 1.0]}}, "slow", "zero")


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


# ------------------------------------------------------------------------------------ recipes and the study
def test_transfer_indices_are_the_subset_draw():
    from wmlib.data import load_sst2
    from wmlib.student import transfer_indices

    train = load_sst2("train")
    idx = transfer_indices(50, seed=3)
    assert [train.texts[i] for i in idx] == train.subset(50, torch.Generator().manual_seed(3)).texts


def test_student_recipes_validate_and_keep_their_cache_keys():
    from wmlib.finetune import SST2Recipe

    # a key made before `init` existed (Chapter 11's QUICK labels-only student) must not change
    old = StudentRecipe(teacher=SST2Recipe(train_size=1000), train_size=1000, alpha=1.0, T=1.0)
    assert old.key() == "student-2l-ffn512-T1-a1-n1000-0a4551af5e"
    pre = replace(old, init="pretrained")
    assert pre.key().startswith("student-pre-") and pre.key() != old.key()
    for bad, match in [(dict(init="random"), "init"), (dict(alpha=1.5), "alpha"), (dict(T=0.0), "temperature"),
                       (dict(train_size=0), "train_size"), (dict(train_size=70_000), "at most"),
                       (dict(epochs=0), "epochs"), (dict(layers=()), "layers"), (dict(ffn=0), "ffn"),
                       (dict(lr=0.0), "lr")]:
        with pytest.raises(ValueError, match=match):
            replace(StudentRecipe(), **bad)


def test_every_study_condition_changes_one_thing():
    from dataclasses import asdict

    from wmlib.student import DistillStudy, study_conditions

    study = DistillStudy()
    conds = study_conditions(study)
    base = asdict(replace(study.base, seed=0))
    expected = {"distilled": set(), "labels only": {"alpha", "T"}, "pretrained, distilled": {"init"},
                "pretrained, labels only": {"init", "alpha", "T"}, "full, distilled": {"train_size", "epochs"},
                "full, labels only": {"train_size", "epochs", "alpha", "T"}}
    for name, (recipe, seeds) in conds.items():
        changed = {k for k, v in asdict(recipe).items() if v != base[k]}
        if name.startswith("T="):
            assert changed == {"T"}, name
        elif name.startswith("alpha="):
            assert changed == {"alpha"}, name
        elif name.startswith("n="):
            assert changed <= {"train_size", "epochs"} and changed, name
        else:
            assert changed == expected[name], (name, changed)
        assert recipe.seed == 0 and len(seeds) >= 3 or name.startswith("full")
    assert len({r.key() for r, _ in conds.values()}) == len(conds), "no condition twice"
    with pytest.raises(ValueError, match="seeds"):
        DistillStudy(seeds=(0, 0, 1))


def test_the_recorded_study_is_the_codes_configuration():
    """wmlib/results/distill_sst2.json, which Chapter 11 loads, was made by today's DistillStudy
    with today's recipes: rerun `wmlib distill-sst2 --study --json wmlib/results/distill_sst2.json`
    after changing either."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from wmlib.student import DistillStudy, compare_seeds, study_conditions, study_correct

    path = Path(__file__).resolve().parents[1] / "wmlib" / "results" / "distill_sst2.json"
    results = json.loads(path.read_text())
    study = DistillStudy()
    assert results["study"] == json.loads(json.dumps(asdict(study)))
    assert results["command"] == "wmlib distill-sst2 --study --json wmlib/results/distill_sst2.json"
    assert results.get("complete") and results["dev_n"] == 872
    assert len(results["teacher"]["dev_correct"]) == 872
    for name, (recipe, seeds) in study_conditions(study).items():
        assert results["conditions"][name]["recipe"] == json.loads(json.dumps(asdict(recipe)))
        runs = results["runs"][name]
        assert sorted(map(int, runs)) == sorted(seeds), name
        for seed, run in runs.items():
            assert run["key"] == replace(recipe, seed=int(seed)).key()
            assert run["accuracy"] == pytest.approx(run["dev_correct"].count("1") / 872)
        assert study_correct(results, name).shape == (len(seeds), 872)
    c = compare_seeds(study_correct(results, "distilled"), study_correct(results, "labels only"))
    assert len(c.per_seed) == len(study.seeds)


def test_compare_seeds_pairs_seeds_and_sentences():
    import numpy as np

    from wmlib.student import compare_seeds

    rng = np.random.default_rng(0)
    b = rng.random((3, 400)) < 0.7
    a = b | (rng.random((3, 400)) < 0.3)  # A right wherever B is, and on more sentences
    c = compare_seeds(a, b)
    assert c.difference.above(0) and c.ahead == 3 and all(m.only_b == 0 for m in c.per_seed)
    assert c.verdict("A", "B").startswith("A is more accurate than B") and "3 of 3 seeds" in c.verdict("A", "B")
    same = compare_seeds(b, b)
    assert "do not differ detectably" in same.verdict("A", "B")
    with pytest.raises(ValueError, match="same seeds"):
        compare_seeds(a, b[:2])


def test_a_pretrained_initialised_student_trains(tmp_path, monkeypatch, tokenizer):
    """init='pretrained' takes the layers of the pretrained encoder, never the teacher's."""
    from wmlib.finetune import SST2Recipe
    from wmlib.models import load_encoder

    monkeypatch.setenv("WMLIB_CACHE_DIR", str(tmp_path))
    teacher = tiny_classifier(tokenizer.vocab_size, layers=3)  # a teacher that cannot be the source
    data = toy(32)
    recipe = StudentRecipe(teacher=SST2Recipe(train_size=1000), layers=(0, 5), ffn=64, train_size=32, batch_size=16,
                           init="pretrained")
    logits = torch.tensor([[-2.0, 2.0] if y else [2.0, -2.0] for y in data.labels])
    student, _, info = distill_sst2(recipe, cache="off", teacher=(teacher, tokenizer), transfer=data,
                                    teacher_logits=logits)
    assert info["init"] == "pretrained" and info["history"].steps == 2
    pretrained = load_encoder("minilm-l6")[0]
    assert student.encoder.config.hidden_size == pretrained.config.hidden_size  # not the tiny teacher's width
    assert torch.equal(student.encoder.embeddings.word_embeddings.weight, pretrained.embeddings.word_embeddings.weight)


@pytest.mark.parametrize("family", ["bert", "distilbert", "modernbert"])
def test_students_of_every_encoder_family(family, tokenizer):
    from test_finetune import tiny_family_encoder

    teacher = SentenceClassifier(tiny_family_encoder(family, tokenizer.vocab_size, layers=3), 2).eval()
    student = make_student(teacher, [0, 2], ffn=16, tokenizer=tokenizer, texts=["a good film", "a bad one"])
    data = toy(32)
    z = torch.tensor([[-2.0, 2.0] if y else [2.0, -2.0] for y in data.labels])
    history = distill(student, tokenizer, data, z, T=2.0, alpha=0.5, batch_size=16, lr=1e-3)
    assert history.steps == 2
    out = compare_latency({"teacher": teacher, "student": student}, tokenizer, ["a good film"] * 4, batch_size=2,
                          repeats=2, warmup=1, rounds=1)
    assert set(out) == {"teacher", "student"}


def test_distill_cli_flags(capsys):
    from wmlib.cli import main

    assert main(["distill-sst2", "--json", "x.json"]) == 2
    assert "--json goes with --study" in capsys.readouterr().err
    assert main(["distill-sst2", "--train-size", "70000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at most" in err[0]
