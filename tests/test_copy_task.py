"""wmlib.copy_task: the data layout, bit errors, the LSTM baseline, training and evaluation."""

import pytest
import torch

from wmlib.copy_task import (
    CopyExperiment, CopyRecipe, CopyTask, LSTMBaseline, bit_errors, count_parameters, evaluate_copy, run_copy_seed,
    train_copy,
)


def test_layout_of_one_batch():
    task = CopyTask(bits=8, max_len=20)
    x, y, mask = task.sample(3, length=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 11, 9) and y.shape == (3, 11, 8) and mask.shape == (11,)
    assert torch.equal(x[:, :5, :8], y[:, 6:])  # the target is the input, after the delimiter
    assert torch.equal(x[:, :, 8], torch.tensor([0.0] * 5 + [1.0] + [0.0] * 5).expand(3, 11))
    assert (x[:, 5:, :8] == 0).all()  # nothing to see after the sequence
    assert mask.tolist() == [False] * 6 + [True] * 5
    assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_random_lengths_cover_the_range_and_are_seeded():
    task = CopyTask(min_len=2, max_len=4)
    g = torch.Generator().manual_seed(1)
    lengths = {(task.sample(1, generator=g)[0].shape[1] - 1) // 2 for _ in range(60)}
    assert lengths == {2, 3, 4}
    a = task.sample(2, generator=torch.Generator().manual_seed(5))
    b = task.sample(2, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(bits=0), "bits"), (dict(min_len=0), "min_len"), (dict(min_len=5, max_len=4), "max_len")],
)
def test_bad_task(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CopyTask(**kwargs)


@pytest.mark.parametrize("kwargs, match", [(dict(batch_size=0), "batch_size"), (dict(batch_size=2, length=0), "length")])
def test_bad_sample(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CopyTask().sample(**kwargs)


def test_bit_errors_counts_wrong_bits_on_scored_steps_only():
    x, y, mask = CopyTask(bits=4).sample(2, length=3, generator=torch.Generator().manual_seed(2))
    logits = (y * 2 - 1) * 5.0  # perfect predictions
    assert bit_errors(logits, y, mask).tolist() == [0.0, 0.0]
    logits[0, -1, :2] *= -1  # two wrong bits in sequence 0, on a scored step
    logits[1, 0, :] = 7.0  # an unscored step: does not count
    assert bit_errors(logits, y, mask).tolist() == [2.0, 0.0]
    assert bit_errors(torch.zeros_like(y), y, mask).sum() == y[:, mask].sum()  # all-zero output


def test_bit_errors_bad_inputs():
    x, y, mask = CopyTask().sample(2, length=3)
    with pytest.raises(ValueError, match="same shape"):
        bit_errors(y[:, :-1], y, mask)
    with pytest.raises(ValueError, match="bool"):
        bit_errors(y, y, mask.float())


def test_lstm_baseline_shapes_and_errors():
    lstm = LSTMBaseline(9, 8, hidden_size=12)
    assert lstm(torch.randn(2, 7, 9)).shape == (2, 7, 8)
    assert count_parameters(lstm) == 4 * 12 * (9 + 12) + 8 * 12 + 12 * 8 + 8
    with pytest.raises(ValueError, match=r"\(batch, time, 9\)"):
        lstm(torch.randn(2, 7, 8))


def test_training_reduces_the_error_and_evaluation_is_per_length():
    torch.manual_seed(0)
    task = CopyTask(bits=4, max_len=2)
    lstm = LSTMBaseline(task.input_size, task.output_size, hidden_size=32)
    before = evaluate_copy(lstm, task, [1, 2], n=64, generator=torch.Generator().manual_seed(1))
    log = train_copy(lstm, task, 300, batch_size=16, lr=1e-2, generator=torch.Generator().manual_seed(0),
                     log_every=100, lr_drop=(0.2, 0.1))
    after = evaluate_copy(lstm, task, [1, 2], n=64, generator=torch.Generator().manual_seed(1))
    assert [s for s, _ in log["curve"]] == [100, 200, 300]
    assert all(0 <= e <= 1 for _, e in log["curve"])
    drop = log["lr_drop_step"]  # the first log point whose error was under the threshold
    assert drop == next((s for s, e in log["curve"] if e < 0.2), None)
    assert set(after) == {1, 2}
    assert after[1] < 0.25 * before[1] and after[2] < 0.5 * before[2], (before, after)
    assert lstm.training  # evaluation puts the model back in training mode


@pytest.mark.parametrize("kwargs, match", [(dict(steps=-1), "steps"), (dict(steps=5, lr_drop=(0.2,)), "lr_drop"),
                                           (dict(steps=5, lr_drop=(0.2, 2.0)), "lr_drop")])
def test_train_copy_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_copy(LSTMBaseline(9, 8, 4), CopyTask(), **kwargs)


def test_curriculum_grows_the_lengths_and_stop_below_ends_early():
    torch.manual_seed(0)
    task = CopyTask(bits=2, max_len=4)
    lstm = LSTMBaseline(task.input_size, task.output_size, hidden_size=16)
    log = train_copy(lstm, task, 400, batch_size=16, lr=1e-2, generator=torch.Generator().manual_seed(0),
                     log_every=20, curriculum=(1, 0.3), stop_below=0.3)
    lengths = [L for _, L in log["curriculum"]]
    assert lengths[0] == 1 and lengths == sorted(lengths) and lengths[-1] <= 4
    if log["steps"] < 400:  # stopped early: only once the whole range was in use, below the threshold
        assert lengths[-1] == 4 and log["curve"][-1][1] < 0.3
    with pytest.raises(ValueError, match="curriculum"):
        train_copy(lstm, task, 5, curriculum=(9, 0.1))
    with pytest.raises(ValueError, match="stop_below"):
        train_copy(lstm, task, 5, stop_below=0.0)


def test_run_copy_seed_records_paired_errors_per_length():
    exp = CopyExperiment(train_max=3, lengths=(2, 5), n_eval=4, memory_rows=8, memory_width=4, controller_size=8,
                         lstm_hidden=8, ntm=CopyRecipe(steps=2, batch_size=2, lr=1e-3),
                         lstm=CopyRecipe(steps=4, batch_size=2, lr=1e-3, curriculum=(2, 0.9), log_every=2))
    for kind in ("ntm", "lstm"):
        result, state = run_copy_seed(kind, 1, exp)
        again, _ = run_copy_seed(kind, 1, exp)
        assert result["errors"] == again["errors"]  # seeded
        assert set(result["errors"]) == {"2", "5"} and len(result["errors"]["5"]) == 4
        assert all(0 <= e <= 8 * 5 for e in result["errors"]["5"])
        assert result["kind"] == kind and result["threads"] == 1 and state
    assert torch.get_num_threads() >= 1
    with pytest.raises(ValueError, match="kind"):
        run_copy_seed("gru", 0, exp)
    with pytest.raises(ValueError, match="memory rows"):
        CopyExperiment(lengths=(200,))
    with pytest.raises(ValueError, match="n_eval"):
        CopyExperiment(n_eval=0)
