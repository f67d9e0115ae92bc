"""Small helpers every chapter uses: seeding, choosing a device, progress bars, timing, glue."""

from __future__ import annotations

import os
import random
import sys
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and all GPUs); return a torch.Generator seeded the same.

    Chapters call this once in their parameters section so that every run prints the same numbers.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def get_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Pick a device: "auto" tries CUDA, then Apple's MPS, then the CPU.

    An explicit name ("cpu", "cuda", "cuda:1", "mps") is checked: asking for a GPU that is not
    there raises an error that says so, rather than failing later inside torch.
    """
    if preference is None or preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"Unknown device {preference!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"DEVICE={preference!r} but no CUDA GPU is visible to torch. Use DEVICE='auto' or 'cpu', "
            "or in Colab choose Runtime > Change runtime type > GPU."
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise RuntimeError(f"DEVICE={preference!r} but Apple's MPS backend is not available here.")
    return device


def progress_enabled() -> bool:
    """False when the environment variable WMLIB_PROGRESS is off/0/false/no."""
    return os.environ.get("WMLIB_PROGRESS", "on").lower() not in {"off", "0", "false", "no"}


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kwargs) -> Iterator[T]:
    """A progress bar (tqdm) around ``iterable``.

    Set the environment variable ``WMLIB_PROGRESS=off`` to silence bars, as the book build and the
    tests do, so that published pages show results rather than bars frozen at 100 %.
    """
    if not progress_enabled():
        return iter(iterable)
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, **kwargs))


@contextmanager
def timer() -> Iterator[dict]:
    """``with timer() as t: ...`` then ``t["seconds"]`` holds the wall-clock time of the block."""
    out: dict = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for the GPU (CUDA or Apple's MPS) to finish queued work; nothing on a CPU. Every timing
    calls it before reading a clock: GPU calls return before the work is done."""
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (``None``: keep the setting), then restore it."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_cpu_thread(device="cpu"):
    """Run the block with one torch thread when ``device`` is the CPU, then restore the setting.

    Small models (memory networks, NTMs, small LSTMs) run many tiny tensor operations: on a CPU one
    thread is faster than several, and much faster on a busy machine, where threads wait for each
    other."""
    return torch_threads(1 if torch.device(device).type == "cpu" else None)


def time_call(fn, *args, repeats: int = 5, warmup: int = 1, device: torch.device | None = None,
              clock: str = "wall", **kwargs) -> float:
    """Median seconds of ``fn(*args, **kwargs)`` over ``repeats`` runs after ``warmup``.

    ``clock="wall"``: wall-clock time; ``clock="cpu"``: this process's CPU time (all threads), which
    other programs sharing the machine inflate much less, so it suits a comparison that must hold
    on a busy computer. On a GPU the device is synchronised around each call, so the time is the
    kernel's, not the launch's.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    for _ in range(warmup):
        fn(*args, **kwargs)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = now()
        fn(*args, **kwargs)
        synchronize(device)
        times.append(now() - start)
    return float(np.median(times))


def glue(name: str, value, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the prose (``{glue:text}`name```) when the book is built.

    Uses ``myst_nb.glue`` where it is installed (the book build); elsewhere (Colab, plain Jupyter)
    it does nothing unless ``display`` is true, so chapters run the same everywhere. Returns None,
    so that a glue call ending a cell does not echo the value.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            print(f"{name} = {value}")
        return None
    _glue(name, value, display=display)
    return None


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@contextmanager
def _quiet_stderr_fd():
    """Silence file descriptor 2 (C-level stderr) for a moment: PyTorch's profiler (kineto) prints a
    line on every start and stop, which would land in the notebook's output."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (some embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_bytes(fn, *args, **kwargs) -> int:
    """The peak of the bytes PyTorch's CPU allocator holds for tensors made while ``fn`` runs.

    PyTorch's profiler records each operator's own allocations and each free; replayed in order of
    time, their running sum is the live bytes, and its maximum the peak. It counts tensors only (not
    Python objects or the allocator's slack), so it does not depend on what ran before in the process.
    """
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr_fd():
        prof.start()
    try:
        fn(*args, **kwargs)
    finally:
        with _quiet_stderr_fd():
            prof.stop()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def peak_memory(fn, *args, device: torch.device | str = "cpu", **kwargs) -> int | None:
    """Extra memory, in bytes, that ``fn(*args, **kwargs)`` needs at its peak, its result included.

    On a CUDA device: the rise of ``torch.cuda.max_memory_allocated``. On a CPU: the peak of the
    bytes of the tensors that ``fn`` allocates and has not yet freed, read from PyTorch's profiler
    (deterministic: unlike the process's resident memory, it does not depend on what the allocator
    kept from earlier work). Elsewhere (MPS) returns None.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if device.type != "cpu":
        return None
    return _cpu_peak_bytes(fn, *args, **kwargs)
