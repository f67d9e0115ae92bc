"""Chapter 11's checkers pass right answers and name the typical mistakes."""

import pytest
import torch
import torch.nn.functional as F

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch11


def test_softmax_with_temperature():
    assert ch11.check_softmax_with_temperature(lambda z, T: torch.softmax(z / T, dim=-1))
    wrong = {
        "multiplied": lambda z, T: torch.softmax(z * T, dim=-1),
        "no effect": lambda z, T: torch.softmax(z, dim=-1),
        "rows do not sum": lambda z, T: torch.softmax(z / T, dim=0),
        "not the probabilities": lambda z, T: torch.softmax(z, dim=-1) ** (1 / T),
        "shape": lambda z, T: torch.softmax(z / T, dim=-1)[0],
    }
    for message, fn in wrong.items():
        with pytest.raises(ExerciseFailure, match=message):
            ch11.check_softmax_with_temperature(fn)


def right_soft(s, t, T):
    return F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T


def test_soft_target_loss_accepts_the_right_answer():
    assert ch11.check_soft_target_loss(right_soft)

    def by_hand(s, t, T):
        p = torch.softmax(t / T, -1)
        return (p * (p.log() - torch.log_softmax(s / T, -1))).sum(-1).mean() * T ** 2

    assert ch11.check_soft_target_loss(by_hand)


@pytest.mark.parametrize("fn, message", [
    (lambda s, t, T: right_soft(s, t, T) / T ** 2, "factor T²"),
    (lambda s, t, T: right_soft(s, t, T) / T, "not T"),
    (lambda s, t, T: right_soft(t, s, T), "wrong way round"),
    (lambda s, t, T: F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="none").mean() * T * T,
     "batchmean"),
    (lambda s, t, T: F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="sum") * T * T, "summed"),
    (lambda s, t, T: -(F.softmax(t / T, -1) * F.log_softmax(s / T, -1)).sum(-1).mean() * T * T, "cross-entropy"),
    (lambda s, t, T: F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean") * T * T,
     "divide both"),
    (lambda s, t, T: F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="none") * T * T,
     "one number"),
])
def test_soft_target_loss_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch11.check_soft_target_loss(fn)


def right_count(V, d, k, f, P, S):
    embeddings = (V + P + S) * d + 2 * d
    layer = (4 * d * d + 4 * d) + (2 * d * f + f + d) + 4 * d
    return embeddings + k * layer


def test_bert_param_count():
    assert ch11.check_bert_param_count(right_count)
    wrong = {
        "word-piece embedding table": lambda V, d, k, f, P, S: right_count(V, d, k, f, P, S) - V * d,
        "position embeddings": lambda V, d, k, f, P, S: right_count(V, d, k, f, P, S) - P * d,
        "two LayerNorms": lambda V, d, k, f, P, S: right_count(V, d, k, f, P, S) - k * 4 * d,
        "biases": lambda V, d, k, f, P, S: right_count(V, d, k, f, P, S) - k * (4 * d + f + d),
        "number of layers": lambda V, d, k, f, P, S: right_count(V, d, 1, f, P, S),
        "an int": lambda V, d, k, f, P, S: "many",
    }
    for message, fn in wrong.items():
        with pytest.raises(ExerciseFailure, match=message):
            ch11.check_bert_param_count(fn)

    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseIncomplete):
        ch11.check_bert_param_count(stub)


def test_param_count_matches_minilm():
    from wmlib.models import load_encoder

    enc = load_encoder("minilm-l6")[0]
    c = enc.config
    no_pooler = sum(p.numel() for n, p in enc.named_parameters() if not n.startswith("pooler"))
    assert right_count(c.vocab_size, c.hidden_size, c.num_hidden_layers, c.intermediate_size,
                       c.max_position_embeddings, c.type_vocab_size) == no_pooler
