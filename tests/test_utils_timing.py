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
