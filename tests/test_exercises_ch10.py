"""Chapter 10's checkers pass right answers and name the typical mistakes."""

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch10


def right_masked_mean(hidden, mask):
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1)


@pytest.mark.parametrize("fn, message", [
    (lambda h, m: h.mean(1), "padding positions too"),
    (lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1], "padded length"),
    (lambda h, m: (h * m.unsqueeze(-1)).sum(1), "did not divide"),
    (lambda h, m: h.mean(-1), "over the features"),
    (lambda h, m: right_masked_mean(h, m) + 1, "differ"),
    (lambda h, m: "pooled", "torch.Tensor"),
])
def test_masked_mean_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch10.check_masked_mean(fn)


def test_masked_mean_accepts_the_right_answer_and_reports_stubs():
    assert ch10.check_masked_mean(right_masked_mean)

    def stub(hidden, mask):
        raise NotImplementedError

    with pytest.raises(ExerciseIncomplete):
        ch10.check_masked_mean(stub)


def right_lr(step, base_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    return base_lr * max(0.0, (total_steps - step) / (total_steps - warmup_steps))


@pytest.mark.parametrize("fn, message", [
    (lambda s, b, w, t: b * max(0.0, (t - s) / (t - w)), "no warm-up"),
    (lambda s, b, w, t: b * s / w if s < w else b * (t - s) / (t - w), "negative"),
    (lambda s, b, w, t: b * s / w if s < w else b * max(0.0, (t - s) / t), "total_steps - warmup_steps"),
    (lambda s, b, w, t: b * (s + 1) / w if s < w else b * max(0.0, (t - s) / (t - w)), "off by one"),
    (lambda s, b, w, t: "fast", "return a number"),
])
def test_lr_schedule_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch10.check_warmup_linear_lr(fn)


def test_lr_schedule_accepts_the_right_answer_and_matches_the_library():
    from wmlib.finetune import linear_warmup_decay

    assert ch10.check_warmup_linear_lr(right_lr)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_warmup_decay(opt, 10, 100)
    assert all(abs(sched.lr_lambdas[0](s) - right_lr(s, 1.0, 10, 100)) < 1e-12 for s in range(101))


def right_prf(y_true, y_pred, k):
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=list(range(k)), zero_division=0)
    return list(p), list(r), list(f)


def test_per_class_metrics_accepts_scikit_learn():
    assert ch10.check_per_class_metrics(right_prf)


@pytest.mark.parametrize("fn, message", [
    (lambda t, p, k: (lambda a: (a[1], a[0], a[2]))(right_prf(t, p, k)), "swapped"),
    (lambda t, p, k: (lambda a: (a[0], a[1], [(x + y) / 2 for x, y in zip(a[0], a[1])]))(right_prf(t, p, k)),
     "harmonic mean"),
    (lambda t, p, k: (lambda a: (a[0][:2], a[1][:2], a[2][:2]))(right_prf(t, p, k)), "one per class"),
    (lambda t, p, k: (lambda a: ([x if x else float("nan") for x in a[0]], a[1], a[2]))(right_prf(t, p, k)), "NaN"),
    (lambda t, p, k: right_prf(t, p, k)[:2], "three sequences"),
])
def test_per_class_metrics_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch10.check_per_class_metrics(fn)


@pytest.fixture(scope="module")
def tokenizer():
    from wmlib.models import load_encoder

    return load_encoder("minilm-l6")[1]


def test_truncation_rate(tokenizer):
    right = lambda tok, texts, n: sum(len(tok(t)["input_ids"]) > n for t in texts) / len(texts)  # noqa: E731
    assert ch10.check_truncation_rate(right, tokenizer)
    wrong = {
        "special tokens": lambda tok, texts, n: sum(len(tok.tokenize(t)) > n for t in texts) / len(texts),
        "counted words": lambda tok, texts, n: sum(len(t.split()) > n for t in texts) / len(texts),
        "not >=": lambda tok, texts, n: sum(len(tok(t)["input_ids"]) >= n for t in texts) / len(texts),
        "not the count": lambda tok, texts, n: sum(len(tok(t)["input_ids"]) > n for t in texts),
    }
    for message, fn in wrong.items():
        with pytest.raises(ExerciseFailure, match=message):
            ch10.check_truncation_rate(fn, tokenizer)
