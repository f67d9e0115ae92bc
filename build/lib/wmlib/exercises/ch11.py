"""Checkers for Chapter 11, "Knowledge distillation: a smaller working memory"."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._core import ExerciseFailure, call, expect_int, expect_tensor, passed

__all__ = ["check_softmax_with_temperature", "check_soft_target_loss", "check_bert_param_count"]


def check_softmax_with_temperature(softmax_with_temperature) -> bool:
    """Exercise 11.1: ``softmax_with_temperature(logits (..., C), T) -> probabilities (..., C)``."""
    ex = "Exercise 11.1 (softmax with a temperature)"
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(4, 5, generator=g) * 3  # 4 rows, 5 classes: a softmax over rows shows
    for T in (1.0, 2.0, 4.0, 0.5):
        got = call(ex, softmax_with_temperature, logits.clone(), T)
        expect_tensor(ex, got, shape=(4, 5), name=f"the result for T={T}")
        want = torch.softmax(logits / T, dim=-1)
        if torch.allclose(got, want, atol=1e-6):
            continue
        if torch.allclose(got, torch.softmax(logits, -1) / T, atol=1e-6) or \
                torch.allclose(got, torch.softmax(logits, -1) ** (1 / T), atol=1e-6):
            raise ExerciseFailure(ex, f"T={T}: scale the logits before the softmax, not the probabilities after it")
        if not torch.allclose(got.sum(-1), torch.ones(4), atol=1e-5):
            hint = ("the probabilities of each row (over the classes, dim=-1) must sum to 1"
                    if torch.allclose(got.sum(0), torch.ones(5), atol=1e-5) else "apply a softmax over the last dim")
            raise ExerciseFailure(ex, f"T={T}: the rows do not sum to 1", hint)
        if torch.allclose(got, torch.softmax(logits * T, dim=-1), atol=1e-6):
            raise ExerciseFailure(ex, f"T={T}: you multiplied the logits by T",
                                  "divide by T: a high temperature must make the distribution *softer*")
        if torch.allclose(got, torch.softmax(logits, dim=-1), atol=1e-6):
            raise ExerciseFailure(ex, f"T={T}: the temperature has no effect on your result", "softmax(logits / T)")
        raise ExerciseFailure(ex, f"T={T}: the probabilities differ from softmax(logits / T)")
    return passed(ex, "softmax(logits / T): T > 1 softens, T < 1 sharpens")


def _reference_soft_loss(s, t, T):
    return F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T


def check_soft_target_loss(soft_target_loss) -> bool:
    """Exercise 11.2: ``soft_target_loss(student_logits (N, C), teacher_logits (N, C), T)`` =
    T² · KL(teacher_T ‖ student_T), averaged over the N examples."""
    ex = "Exercise 11.2 (the soft-target loss)"
    g = torch.Generator().manual_seed(12)
    N, C = 6, 3
    s, t = torch.randn(N, C, generator=g) * 2, torch.randn(N, C, generator=g) * 3
    for T in (1.0, 2.0, 4.0):
        got = call(ex, soft_target_loss, s.clone(), t.clone(), T)
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise ExerciseFailure(ex, f"return one number (a 0-d tensor), got shape {tuple(got.shape)}",
                                      "average over the examples: reduction='batchmean'")
            got = got.reshape(())
        else:
            try:
                got = torch.tensor(float(got))
            except (TypeError, ValueError):
                raise ExerciseFailure(ex, f"return a tensor, got {type(got).__name__}") from None
        want = _reference_soft_loss(s, t, T)
        if torch.allclose(got, want, rtol=1e-4, atol=1e-6):
            continue
        what = f"T={T}: your loss is {got.item():.5f}, expected {want.item():.5f}"
        p_t, log_q = F.softmax(t / T, -1), F.log_softmax(s / T, -1)
        wrong = [
            (want / (T * T), "you left out the factor T²: without it the soft gradients shrink like 1/T²"),
            (want / T, "the factor is T², not T"),
            (F.kl_div(F.log_softmax(t / T, -1), F.softmax(s / T, -1), reduction="batchmean") * T * T,
             "the KL divergence is the wrong way round: KL(teacher ‖ student) = Σ p_teacher (log p_teacher − "
             "log p_student)"),
            (want / C, "reduction='mean' divides by N·C; average over the examples only ('batchmean')"),
            (want * N, "you summed over the examples; average over them"),
            (-(p_t * log_q).sum(-1).mean() * T * T,
             "that is the cross-entropy with the teacher's soft targets: it differs from the KL divergence by the "
             "teacher's entropy, a constant for the student. Subtract it (or use F.kl_div) to get a loss that is 0 "
             "when the student matches the teacher"),
            (F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean") * T * T,
             "divide both the student's and the teacher's logits by T"),
        ]
        for value, hint in wrong:
            if torch.allclose(got, value, rtol=1e-4, atol=1e-6) and not torch.allclose(value, want, rtol=1e-4):
                raise ExerciseFailure(ex, what, hint)
        raise ExerciseFailure(ex, what)
    same = call(ex, soft_target_loss, t.clone(), t.clone(), 2.0)
    if abs(float(same)) > 1e-5:
        raise ExerciseFailure(ex, f"a student equal to its teacher should have loss 0, yours has {float(same):.3g}")
    return passed(ex, "T² · KL(teacher_T ‖ student_T), averaged over the batch")


def _bert_params(vocab_size, hidden, layers, intermediate, max_positions, type_vocab):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=intermediate, max_position_embeddings=max_positions,
                     type_vocab_size=type_vocab)
    return sum(p.numel() for p in BertModel(cfg, add_pooling_layer=False).parameters())


def check_bert_param_count(bert_param_count) -> bool:
    """Exercise 11.3: ``bert_param_count(vocab_size, hidden, layers, intermediate, max_positions,
    type_vocab)``: the parameters of a BERT encoder without its pooler, without building it."""
    ex = "Exercise 11.3 (where a BERT's parameters are)"
    for args in ((100, 8, 1, 16, 40, 3), (50, 6, 3, 10, 20, 2), (1000, 16, 2, 64, 512, 1)):  # first: no two parts equal
        V, d, k, f, P, S = args
        want = _bert_params(*args)
        got = expect_int(ex, call(ex, bert_param_count, *args))
        if got == want:
            continue
        embeddings = (V + P + S) * d + 2 * d
        layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
        hints = {
            want - embeddings: "you forgot the embeddings (word pieces, positions, segment types and their LayerNorm)",
            want - V * d: "you forgot the word-piece embedding table, vocab_size × hidden: the biggest single part",
            want - P * d: "you forgot the position embeddings (max_positions × hidden)",
            want - S * d: "you forgot the segment (token type) embeddings (type_vocab × hidden)",
            want - 2 * d: "you forgot the LayerNorm after the embeddings (a gain and a bias of size hidden)",
            want - k * 4 * d: "each layer has two LayerNorms (after attention and after the MLP), 2 × hidden each",
            want - k * (4 * d + f + d): "you forgot the biases of the linear layers",
            want - k * 2 * d * f: "you forgot the feed-forward block (hidden → intermediate → hidden)",
            embeddings + layer: "multiply the per-layer count by the number of layers",
        }
        hint = hints.get(got)
        raise ExerciseFailure(ex, f"bert_param_count{args} = {got}, expected {want}", hint)
    return passed(ex, "embeddings + layers × (attention + feed-forward + 2 LayerNorms)")
