"""wmlib.utils timing: one home for wall and CPU time, synchronised on a GPU."""

import time

import pytest

from wmlib.utils import synchronize, time_call


def test_time_call_wall_and_cpu_clocks():
    assert time_call(time.sleep, 0.02, repeats=3, warmup=0) >= 0.015  # sleeping takes wall time ...
    assert time_call(time.sleep, 0.02, repeats=3, warmup=0, clock="cpu") < 0.015  # ... and no CPU time
    busy = lambda: sum(i * i for i in range(200_000))  # noqa: E731
    assert time_call(busy, repeats=3, clock="cpu") > 0


def test_time_call_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="clock"):
        time_call(lambda: None, clock="gpu")
    synchronize("cpu")  # nothing to wait for
    synchronize(None)


def test_peak_memory_on_a_cpu_counts_the_call_s_tensors():
    import torch

    from wmlib.utils import peak_memory

    n = 1 << 20  # 4 MiB of float32
    assert peak_memory(lambda: torch.empty(n)) == 4 * n  # the result counts
    assert 0 <= peak_memory(lambda: torch.empty(n) + 1) - 8 * n < 1024  # two tensors live at the peak
    keep = torch.ones(n)
    assert peak_memory(lambda: keep.sum()) < 1024  # what existed before does not count
    # an L x L matrix: doubling L quadruples the peak, exactly, whatever ran before
    sizes = [peak_memory(lambda m=m: torch.ones(m, m) @ torch.ones(m, m)) for m in (256, 512)]
    assert sizes[1] == 4 * sizes[0]
    assert peak_memory(lambda: None, device="meta") is None
