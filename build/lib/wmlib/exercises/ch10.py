"""Checkers for Chapter 10, "Fine-tuning a BERT-family encoder"."""

from __future__ import annotations

import math

import torch

from ._core import ExerciseFailure, call, expect_float, expect_tensor, passed

__all__ = ["check_masked_mean", "check_warmup_linear_lr", "check_per_class_metrics", "check_truncation_rate"]


def check_masked_mean(masked_mean) -> bool:
    """Exercise 10.1: ``masked_mean(hidden (B, L, D), attention_mask (B, L)) -> (B, D)``."""
    ex = "Exercise 10.1 (mean pooling with a mask)"
    g = torch.Generator().manual_seed(10)
    B, L, D = 3, 6, 5  # L != D exposes a mean over the wrong axis
    hidden = torch.randn(B, L, D, generator=g)
    lengths = torch.tensor([6, 3, 1])
    mask = (torch.arange(L) < lengths[:, None]).long()  # what a tokenizer returns: int64 ones and zeros
    m = mask.unsqueeze(-1).float()
    want = (hidden * m).sum(1) / m.sum(1)
    got = call(ex, masked_mean, hidden.clone(), mask.clone())
    expect_tensor(ex, got, name="the pooled vectors")
    if tuple(got.shape) == (B, L):
        raise ExerciseFailure(ex, f"the result has shape {(B, L)}: you averaged over the features, not the tokens",
                              "average over dim=1, the token axis")
    expect_tensor(ex, got, shape=(B, D), name="the pooled vectors")
    if torch.allclose(got, hidden.mean(1), atol=1e-5):
        raise ExerciseFailure(ex, "you averaged over the padding positions too",
                              "multiply by the mask before summing, and divide by the number of real tokens")
    if torch.allclose(got, (hidden * m).sum(1) / L, atol=1e-5):
        raise ExerciseFailure(ex, "you divided by the padded length L instead of each sentence's number of real tokens",
                              "divide by mask.sum(1)")
    if torch.allclose(got, (hidden * m).sum(1), atol=1e-5):
        raise ExerciseFailure(ex, "you summed the real tokens but did not divide by their number")
    if not torch.allclose(got, want, atol=1e-5):
        raise ExerciseFailure(ex, "the pooled vectors differ from the average of each sentence's real tokens")
    padded = torch.cat([hidden, torch.full((B, 2, D), 1e3)], dim=1)  # more padding must change nothing
    again = call(ex, masked_mean, padded, torch.cat([mask, torch.zeros(B, 2, dtype=torch.long)], dim=1))
    if not torch.allclose(again, want, atol=1e-4):
        raise ExerciseFailure(ex, "adding padding positions changed the result", "padding must get weight 0")
    return passed(ex, "padding is ignored: each sentence is the mean of its own tokens")


def _reference_lr(step, base_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    return base_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def check_warmup_linear_lr(warmup_linear_lr) -> bool:
    """Exercise 10.2: ``warmup_linear_lr(step, base_lr, warmup_steps, total_steps) -> float``."""
    ex = "Exercise 10.2 (warm-up and linear decay)"
    for base, warm, total in ((1e-4, 10, 100), (3e-5, 0, 40), (2.0, 5, 6)):
        for step in range(total + 3):
            got = call(ex, warmup_linear_lr, step, base, warm, total)
            got = expect_float(ex, got)
            want = _reference_lr(step, base, warm, total)
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12):
                continue
            where = f"warmup_linear_lr({step}, {base}, {warm}, {total}) = {got:.4g}, expected {want:.4g}"
            if step < warm and math.isclose(got, base * (step + 1) / warm, rel_tol=1e-6):
                raise ExerciseFailure(ex, where, "off by one: at step 0 the warm-up rate is 0")
            if step == 0 and warm > 0 and got > 0:
                raise ExerciseFailure(ex, where, "there is no warm-up: the rate must start at 0 and reach base_lr at "
                                                 "step warmup_steps")
            if step > total and got < 0:
                raise ExerciseFailure(ex, where, "after total_steps the rate must stay at 0, not go negative")
            if step >= warm and math.isclose(got, base * (total - step) / total, rel_tol=1e-6):
                raise ExerciseFailure(ex, where, "the decay must run from base_lr at step warmup_steps to 0 at "
                                                 "total_steps: divide by (total_steps - warmup_steps)")
            raise ExerciseFailure(ex, where)
    return passed(ex, "0 → base_lr over the warm-up, then linearly down to 0")


def _counts(y_true, y_pred, k):
    tp = torch.tensor([((y_pred == c) & (y_true == c)).sum().item() for c in range(k)], dtype=torch.float64)
    pred = torch.tensor([(y_pred == c).sum().item() for c in range(k)], dtype=torch.float64)
    true = torch.tensor([(y_true == c).sum().item() for c in range(k)], dtype=torch.float64)
    return tp, pred, true


def _prf(y_true, y_pred, k):
    tp, pred, true = _counts(y_true, y_pred, k)
    p = torch.where(pred > 0, tp / pred.clamp(min=1), torch.zeros_like(tp))
    r = torch.where(true > 0, tp / true.clamp(min=1), torch.zeros_like(tp))
    f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=1e-12), torch.zeros_like(tp))
    return p, r, f


def check_per_class_metrics(per_class_metrics) -> bool:
    """Exercise 10.3: ``per_class_metrics(y_true, y_pred, num_classes) -> (precision, recall, f1)``,
    each of length ``num_classes``; a class never predicted has precision 0."""
    ex = "Exercise 10.3 (precision, recall and F1 per class)"
    y_true = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 0, 1])
    y_pred = torch.tensor([0, 0, 1, 2, 1, 1, 0, 2, 2, 0, 2, 1, 0, 1])
    cases = [(y_true, y_pred, 3, "three classes"),
             (torch.tensor([0, 1, 1, 2, 2]), torch.tensor([0, 1, 1, 1, 1]), 3, "class 2 is never predicted")]
    for yt, yp, k, what in cases:
        result = call(ex, per_class_metrics, yt.clone(), yp.clone(), k)
        if not (isinstance(result, (tuple, list)) and len(result) == 3):
            raise ExerciseFailure(ex, f"return three sequences (precision, recall, f1); got {type(result).__name__}")
        try:
            got = [torch.as_tensor(x, dtype=torch.float64).flatten() for x in result]
        except (TypeError, ValueError, RuntimeError) as err:
            raise ExerciseFailure(ex, f"precision, recall and f1 must be lists or tensors of numbers ({err})") from None
        if any(len(x) != k for x in got):
            raise ExerciseFailure(ex, f"{what}: each of precision, recall, f1 needs {k} values (one per class); got "
                                      f"lengths {[len(x) for x in got]}")
        p, r, f = _prf(yt, yp, k)
        gp, gr, gf = got
        if any(torch.isnan(x).any() for x in got):
            raise ExerciseFailure(ex, f"{what}: your result contains NaN",
                                  "a class that is never predicted has precision 0 by convention (scikit-learn's "
                                  "zero_division=0); guard the division")
        if torch.allclose(gp, r) and torch.allclose(gr, p) and not torch.allclose(p, r):
            raise ExerciseFailure(ex, "precision and recall are swapped",
                                  "precision divides by how often the class was *predicted*, recall by how often "
                                  "it is *true*")
        if not torch.allclose(gp, p, atol=1e-6):
            raise ExerciseFailure(ex, f"{what}: precision is {gp.tolist()}, expected {p.tolist()}")
        if not torch.allclose(gr, r, atol=1e-6):
            raise ExerciseFailure(ex, f"{what}: recall is {gr.tolist()}, expected {r.tolist()}")
        if torch.allclose(gf, (p + r) / 2, atol=1e-6) and not torch.allclose(f, (p + r) / 2):
            raise ExerciseFailure(ex, "F1 is the harmonic mean of precision and recall, not their average",
                                  "f1 = 2 p r / (p + r)")
        if not torch.allclose(gf, f, atol=1e-6):
            raise ExerciseFailure(ex, f"{what}: F1 is {gf.tolist()}, expected {f.tolist()}")
    return passed(ex, "precision, recall and F1 agree with the definitions (and with scikit-learn)")


def check_truncation_rate(truncation_rate, tokenizer) -> bool:
    """Exercise 10.4: ``truncation_rate(tokenizer, texts, max_len)``: the fraction of ``texts``
    whose token ids, [CLS] and [SEP] included, are longer than ``max_len``."""
    ex = "Exercise 10.4 (how many sentences does max_len cut?)"
    texts = ["good " * 62, "good " * 63, "good " * 64, "unflinchingly " * 20, "a b c", "well ,"]
    for max_len in (64, 8, 512):
        got = call(ex, truncation_rate, tokenizer, list(texts), max_len)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseFailure(ex, f"return a fraction (a float), got {type(got).__name__}: {got!r}") from None
        n_ids = [len(tokenizer(t)["input_ids"]) for t in texts]
        want = sum(n > max_len for n in n_ids) / len(texts)
        if math.isclose(got, want, abs_tol=1e-9):
            continue
        msg = f"with max_len={max_len} you return {got:.3f}, expected {want:.3f}"
        wrong = {
            sum(len(tokenizer.tokenize(t)) > max_len for t in texts) / len(texts):
                "you forgot the two special tokens [CLS] and [SEP] that the tokenizer adds",
            sum(len(t.split()) > max_len for t in texts) / len(texts):
                "you counted words, but the limit is on word pieces: tokenize the texts",
            sum(n >= max_len for n in n_ids) / len(texts):
                "a text of exactly max_len tokens fits: count lengths > max_len, not >=",
            sum(n > max_len for n in n_ids):
                "return the fraction of texts, not the count",
        }
        for value, hint in wrong.items():
            if math.isclose(got, value, abs_tol=1e-9) and not math.isclose(value, want, abs_tol=1e-9):
                raise ExerciseFailure(ex, msg, hint)
        raise ExerciseFailure(ex, msg)
    return passed(ex, "lengths in word pieces, special tokens included")
