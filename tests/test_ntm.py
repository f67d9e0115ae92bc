"""wmlib.ntm: shapes, clear errors on bad input, a write-then-read by hand, gradients."""

import pytest
import torch

from wmlib.ntm import NTM, NTMConfig


def small(**kw):
    base = dict(input_size=5, output_size=4, controller_size=16, memory_rows=12, memory_width=6)
    base.update(kw)
    torch.manual_seed(0)
    return NTM(NTMConfig(**base))


def test_shapes_and_trace():
    ntm = small(read_heads=2)
    x = torch.randn(3, 7, 5)
    logits, trace = ntm(x, return_trace=True)
    assert logits.shape == (3, 7, 4)
    assert trace["read_weights"].shape == (3, 7, 2, 12)
    assert trace["write_weights"].shape == (3, 7, 12)
    assert trace["erase"].shape == trace["add"].shape == (3, 7, 6)
    assert trace["memory"].shape == (3, 12, 6)
    assert trace["beta"].shape == trace["gate"].shape == trace["gamma"].shape == (3, 7, 3)
    assert trace["shift"].shape == (3, 7, 3, 3)
    assert (trace["beta"] >= 0).all() and (trace["gamma"] >= 1).all()
    assert ((trace["gate"] >= 0) & (trace["gate"] <= 1)).all()
    assert torch.allclose(trace["shift"].sum(-1), torch.ones(3, 7, 3), atol=1e-5)
    # every weighting is a probability distribution over the rows
    assert torch.allclose(trace["read_weights"].sum(-1), torch.ones(3, 7, 2), atol=1e-5)
    assert torch.allclose(trace["write_weights"].sum(-1), torch.ones(3, 7), atol=1e-5)
    assert (trace["erase"] >= 0).all() and (trace["erase"] <= 1).all()
    assert torch.equal(ntm(x), logits)  # deterministic, and the trace does not change the output


def test_batch_items_are_independent():
    ntm = small()
    x = torch.randn(4, 6, 5)
    alone = ntm(x[2:3])
    assert torch.allclose(ntm(x)[2:3], alone, atol=1e-6)


@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.randn(3, 5), ValueError, r"\(batch, time, 5\)"),
        (torch.randn(2, 3, 4), ValueError, r"got \(2, 3, 4\)"),
        (torch.ones(2, 3, 5, dtype=torch.long), TypeError, "float"),
        (torch.randn(0, 3, 5), ValueError, "empty"),
        (torch.randn(2, 0, 5), ValueError, "empty"),
        ([[1.0]], ValueError, "list"),
    ],
)
def test_bad_inputs_name_the_problem(x, error, match):
    with pytest.raises(error, match=match):
        small()(x)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(memory_rows=0), "memory_rows"),
        (dict(read_heads=1.5), "read_heads"),
        (dict(shift_range=-1), "shift_range"),
        (dict(memory_rows=2, shift_range=1), "at least 3 memory rows"),
    ],
)
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)


def _hand_set_heads(ntm: NTM, write_shift: int, add: torch.Tensor):
    """Make the controller's head outputs constant: β = 0 (no content), g = 0 (keep the last
    weighting), all shift mass on ``write_shift`` for the write head and 0 for the read head,
    γ large, erase = 1 and the given add vector (before tanh)."""
    c, M, S = ntm.config, ntm.config.memory_width, 2 * ntm.config.shift_range + 1
    bias = torch.zeros(ntm.heads.out_features)
    for head, s in ((0, 0), (1, write_shift)):
        p = bias[head * ntm.head_params : (head + 1) * ntm.head_params]
        p[M] = -20.0  # softplus(-20) ~ 0: β = 0
        p[M + 1] = -20.0  # sigmoid(-20) ~ 0: keep the previous weighting
        p[M + 2 : M + 2 + S] = -20.0
        p[M + 2 + c.shift_range + s] = 20.0  # all shift mass on s
        p[M + 2 + S] = 20.0  # γ ~ 21
    bias[-2 * M : -M] = 20.0  # erase everything under the write head
    bias[-M:] = add
    with torch.no_grad():
        ntm.heads.weight.zero_()
        ntm.heads.bias.copy_(bias)


def test_write_then_read_by_hand():
    ntm = small()
    add = torch.linspace(-2, 2, 6)
    _hand_set_heads(ntm, write_shift=0, add=add)
    x = torch.randn(2, 3, 5)
    _, trace = ntm(x, return_trace=True)
    row0 = torch.zeros(12)
    row0[0] = 1
    assert torch.allclose(trace["write_weights"], row0.expand(2, 3, 12), atol=1e-5)
    # erase 1 then add a: row 0 holds tanh(add) exactly; the other rows keep their initial constant
    want = torch.full((12, 6), ntm.config.memory_init)
    want[0] = torch.tanh(add)
    assert torch.allclose(trace["memory"], want.expand(2, 12, 6), atol=1e-5)
    # the read head, also on row 0, reads back what was written in the same step
    ntm_reads = torch.einsum("btrn,bnm->btrm", trace["read_weights"], trace["memory"])
    assert torch.allclose(ntm_reads[:, :, 0], torch.tanh(add).expand(2, 3, 6), atol=1e-5)


def test_shift_moves_the_write_head_one_row_per_step():
    ntm = small()
    _hand_set_heads(ntm, write_shift=1, add=torch.ones(6))
    _, trace = ntm(torch.randn(1, 15, 5), return_trace=True)
    rows = trace["write_weights"][0].argmax(-1)
    assert rows.tolist() == [(t + 1) % 12 for t in range(15)]  # circular: row 11 is followed by row 0
    assert trace["write_weights"][0].max(-1).values.min() > 0.99  # sharpening kept it one-hot


def test_gradients_reach_every_parameter():
    ntm = small(read_heads=2)
    x = torch.randn(3, 6, 5)
    ntm(x).square().mean().backward()
    for name, p in ntm.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_write_mask_skips_writes():
    ntm = small()
    x = torch.randn(2, 5, 5)
    logits, trace = ntm(x, return_trace=True)
    full_mask_logits = ntm(x, write_mask=torch.ones(5, dtype=torch.bool))
    assert torch.equal(full_mask_logits, logits)  # an all-True mask changes nothing
    _, off = ntm(x, return_trace=True, write_mask=torch.zeros(5, dtype=torch.bool))
    assert torch.allclose(off["memory"], torch.full((2, 12, 6), ntm.config.memory_init))
    # per sequence: only the second sequence writes
    mask = torch.tensor([[False] * 5, [True] * 5])
    _, mixed = ntm(x, return_trace=True, write_mask=mask)
    assert torch.allclose(mixed["memory"][0], off["memory"][0]) and torch.allclose(mixed["memory"][1], trace["memory"][1])


@pytest.mark.parametrize("mask, error, match", [
    (torch.ones(4, dtype=torch.bool), ValueError, r"\(5,\) or \(2, 5\)"),
    (torch.ones(5), TypeError, "bool"),
])
def test_bad_write_mask(mask, error, match):
    with pytest.raises(error, match=match):
        small()(torch.randn(2, 5, 5), write_mask=mask)
