"""The copy task of Graves et al. (2014), an LSTM baseline, and a training loop (Chapter 9).

A sequence of random binary vectors is shown to a recurrent model, followed by a delimiter; the
model must then reproduce the whole sequence with no further input. Solving it for any length
needs a memory that can hold the sequence and be read back in order: a fixed-size hidden state
runs out, an addressable memory does not.

Layout of one example of length L and ``bits`` bits per vector (``bits + 1`` input channels):

    time        0 .. L-1        L            L+1 .. 2L
    input       the vectors     delimiter    zeros
    target      (not scored)    (not scored) the vectors again

The last input channel is the delimiter flag. The loss and the bit errors are computed on the
last L steps only (``mask``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .utils import one_cpu_thread, progress

__all__ = ["CopyTask", "LSTMBaseline", "bit_errors", "count_parameters", "train_copy", "evaluate_copy",
           "CopyRecipe", "CopyExperiment", "build_model", "run_copy_seed", "run_copy_experiment", "training_error",
           "EVAL_SEED"]


@dataclass(frozen=True)
class CopyTask:
    """Random copy-task batches: ``bits`` random bits per step, lengths in ``[min_len, max_len]``."""

    bits: int = 8
    min_len: int = 1
    max_len: int = 20

    def __post_init__(self):
        if self.bits < 1:
            raise ValueError(f"bits must be at least 1, got {self.bits}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}")

    @property
    def input_size(self) -> int:
        return self.bits + 1  # the bits and the delimiter flag

    @property
    def output_size(self) -> int:
        return self.bits

    def sample(self, batch_size: int, length: int | None = None, generator: torch.Generator | None = None):
        """Return ``(x, y, mask)`` for one batch whose sequences all have the same length.

        ``x``: (B, 2L+1, bits+1) float inputs; ``y``: (B, 2L+1, bits) float targets (the
        sequence in the last L steps, zeros elsewhere); ``mask``: (2L+1,) bool, True on the
        scored (output) steps. ``length=None`` draws L uniformly from ``[min_len, max_len]``; an
        explicit length may exceed ``max_len`` (that is how generalisation is tested).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if length is None:
            length = int(torch.randint(self.min_len, self.max_len + 1, (1,), generator=generator))
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        B, L, n = batch_size, length, self.bits
        seq = torch.randint(0, 2, (B, L, n), generator=generator).float()
        x = torch.zeros(B, 2 * L + 1, n + 1)
        x[:, :L, :n] = seq
        x[:, L, n] = 1.0  # the delimiter: "now write it back"
        y = torch.zeros(B, 2 * L + 1, n)
        y[:, L + 1 :] = seq
        mask = torch.zeros(2 * L + 1, dtype=torch.bool)
        mask[L + 1 :] = True
        return x, y, mask


def bit_errors(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Wrong bits per sequence, (B,): predictions are ``logits > 0`` (probability above 1/2)."""
    if logits.shape != y.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(y.shape)} must have the same shape")
    if mask.dtype != torch.bool or mask.shape != logits.shape[1:2]:
        raise ValueError(f"mask must be a bool tensor of shape ({logits.shape[1]},), got {mask.dtype} {tuple(mask.shape)}")
    wrong = (logits[:, mask] > 0).float() != y[:, mask]
    return wrong.flatten(1).sum(1).float()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LSTMBaseline(nn.Module):
    """An LSTM (``num_layers`` layers of ``hidden_size`` units) with a linear read-out.

    ``forward(x)``: (B, T, input_size) -> logits (B, T, output_size). The baseline of the copy
    task: all it remembers must fit in its hidden and cell states.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 128, num_layers: int = 1):
        super().__init__()
        self.input_size = input_size
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must have shape (batch, time, {self.input_size}), got {tuple(x.shape)}")
        h, _ = self.lstm(x)
        return self.out(h)


def train_copy(
    model: nn.Module,
    task: CopyTask,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    clip: float = 10.0,
    lr_drop: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    desc: str = "training",
    log_every: int = 50,
    curriculum: tuple[int, float] | None = None,
    stop_below: float | None = None,
) -> dict:
    """Train ``model`` on ``task`` with Adam and gradient-norm clipping.

    Each step draws one batch of a random length in ``[task.min_len, task.max_len]``; the loss is
    the binary cross-entropy on the output steps. ``lr_drop=(threshold, factor)`` multiplies the
    learning rate by ``factor``, once, at the first log point where the fraction of wrong bits
    over the last ``log_every`` steps is below ``threshold``: a large rate finds the solution
    quickly, a small one keeps it stable afterwards.

    ``curriculum=(start, threshold)``: lengths are drawn from ``[task.min_len, start]`` at first,
    and the longest length grows by one at every log point whose error is below ``threshold``,
    up to ``task.max_len`` (short sequences first, as often done for LSTMs on this task).
    ``stop_below``: stop early at the first log point, with the whole length range in use, whose
    error is below this fraction of bits (the model fits its training lengths).

    Returns ``{"curve": [(step, fraction of bits wrong over the last log_every steps), ...],
    "lr_drop_step": step or None, "curriculum": [(step, longest length), ...] (each change),
    "steps": steps done}``.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if lr_drop is not None and not (len(lr_drop) == 2 and 0 < lr_drop[0] <= 1 and 0 < lr_drop[1] <= 1):
        raise ValueError(f"lr_drop must be (threshold in (0, 1], factor in (0, 1]), got {lr_drop!r}")
    if curriculum is not None and not (len(curriculum) == 2 and task.min_len <= curriculum[0] <= task.max_len
                                       and 0 < curriculum[1] <= 1):
        raise ValueError(f"curriculum must be (start length in [{task.min_len}, {task.max_len}], threshold in "
                         f"(0, 1]), got {curriculum!r}")
    if stop_below is not None and not 0 < stop_below <= 1:
        raise ValueError(f"stop_below must be in (0, 1], got {stop_below!r}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    longest = task.max_len if curriculum is None else int(curriculum[0])
    stage = task if longest == task.max_len else CopyTask(task.bits, task.min_len, longest)
    curve, window, drop_step, stages, done = [], [], None, [(0, longest)], 0
    for step in progress(range(1, steps + 1), desc=desc):
        x, y, mask = stage.sample(batch_size, generator=generator)
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits[:, mask], y[:, mask])
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"the loss became {loss.item()} at step {step}: lower lr or clip")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        window.append(bit_errors(logits.detach(), y, mask).mean().item() / (task.bits * int(mask.sum())))
        done = step
        if step % log_every == 0 or step == steps:
            error = sum(window) / len(window)
            curve.append((step, error))
            window = []
            if longest < task.max_len:
                if error < curriculum[1]:
                    longest += 1
                    stage = CopyTask(task.bits, task.min_len, longest)
                    stages.append((step, longest))
                continue
            if lr_drop is not None and drop_step is None and error < lr_drop[0]:
                for group in opt.param_groups:
                    group["lr"] *= lr_drop[1]
                drop_step = step
            if stop_below is not None and error < stop_below:
                break
    return {"curve": curve, "lr_drop_step": drop_step, "curriculum": stages, "steps": done}


@torch.no_grad()
def evaluate_copy(
    model: nn.Module,
    task: CopyTask,
    lengths,
    n: int = 64,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> dict[int, float]:
    """Mean bit errors per sequence at each length, over ``n`` random sequences per length."""
    model.eval()
    out = {}
    for L in lengths:
        x, y, mask = task.sample(n, length=int(L), generator=generator)
        logits = model(x.to(device)).cpu()
        out[int(L)] = bit_errors(logits, y, mask).mean().item()
    model.train()
    return out


# ------------------------------------------------------------------------------------------------
# Chapter 9's recorded comparison: several seeds of an NTM and of an LSTM, error against length
EVAL_SEED = 10_000  # the test sequences of length L come from torch.Generator().manual_seed(EVAL_SEED + L)


@dataclass(frozen=True)
class CopyRecipe:
    """How one model is trained on the copy task (the arguments of :func:`train_copy`)."""

    steps: int  # the most steps
    batch_size: int
    lr: float
    clip: float = 10.0
    lr_drop: tuple[float, float] | None = None
    curriculum: tuple[int, float] | None = None
    stop_below: float | None = None
    log_every: int = 100


@dataclass(frozen=True)
class CopyExperiment:
    """Chapter 9's recorded run (``wmlib copy-task``): an NTM and an LSTM trained on lengths 1 to
    ``train_max`` with several seeds, each tested on the same ``n_eval`` sequences per length, up to
    120 as in Graves et al. (2014). Each model trains until under ``stop_below`` of the training
    bits are wrong (over ``log_every`` steps) or its step budget runs out; it *fits* the training
    lengths when fewer than ``fit_below`` of their test bits are wrong."""

    bits: int = 8
    train_max: int = 20
    lengths: tuple[int, ...] = (5, 10, 20, 30, 40, 60, 80, 100, 120)
    n_eval: int = 64
    memory_rows: int = 128
    memory_width: int = 20
    controller_size: int = 100
    lstm_hidden: int = 256
    lstm_layers: int = 1
    ntm: CopyRecipe = field(default_factory=lambda: CopyRecipe(steps=4000, batch_size=16, lr=3e-3, lr_drop=(0.2, 0.1),
                                                               stop_below=0.001))
    lstm: CopyRecipe = field(default_factory=lambda: CopyRecipe(steps=20000, batch_size=32, lr=2e-3,
                                                                curriculum=(5, 0.03), lr_drop=(0.02, 0.3),
                                                                stop_below=0.001))
    fit_below: float = 0.01

    def __post_init__(self):
        for name in ("bits", "train_max", "n_eval", "memory_rows", "memory_width", "controller_size", "lstm_hidden",
                     "lstm_layers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"CopyExperiment.{name} must be a positive int, got {v!r}")
        if not self.lengths or any(not isinstance(L, int) or L < 1 for L in self.lengths):
            raise ValueError(f"CopyExperiment.lengths must be positive ints, got {self.lengths!r}")
        if max(self.lengths) > self.memory_rows:
            raise ValueError(f"test lengths up to {max(self.lengths)} need at least that many memory rows, "
                             f"got memory_rows={self.memory_rows}")
        if not 0 < self.fit_below < 1:
            raise ValueError(f"CopyExperiment.fit_below must be in (0, 1), got {self.fit_below!r}")

    @property
    def task(self) -> CopyTask:
        return CopyTask(self.bits, 1, self.train_max)

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(kind: str, exp: CopyExperiment) -> nn.Module:
    """The untrained ``"ntm"`` or ``"lstm"`` of the experiment (seed torch first)."""
    task = exp.task
    if kind == "ntm":
        from .ntm import NTM, NTMConfig

        return NTM(NTMConfig(task.input_size, task.output_size, exp.controller_size, exp.memory_rows,
                             exp.memory_width))
    if kind == "lstm":
        return LSTMBaseline(task.input_size, task.output_size, exp.lstm_hidden, exp.lstm_layers)
    raise ValueError(f"kind must be 'ntm' or 'lstm', got {kind!r}")


def run_copy_seed(kind: str, seed: int, exp: CopyExperiment | None = None, device="cpu") -> tuple[dict, dict]:
    """Train one model (``"ntm"`` or ``"lstm"``) with one seed and test it at every length.

    Returns ``(result, state_dict)``: ``result`` holds the training curve, the steps done, the
    CPU and wall time, and ``errors``: for each length, the wrong bits of each test sequence (the
    same sequences for every seed and model, so comparisons can be paired)."""
    exp = exp or CopyExperiment()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    with one_cpu_thread(device):
        return _run_copy_seed(kind, seed, exp, device)


def _run_copy_seed(kind, seed, exp, device):
    recipe = exp.ntm if kind == "ntm" else exp.lstm
    torch.manual_seed(seed)
    model = build_model(kind, exp).to(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    log = train_copy(model, exp.task, recipe.steps, recipe.batch_size, recipe.lr, recipe.clip, recipe.lr_drop,
                     torch.Generator().manual_seed(seed), device, f"{kind} seed {seed}", recipe.log_every,
                     recipe.curriculum, recipe.stop_below)
    train_cpu = time.process_time() - start_cpu
    errors = {}
    with torch.no_grad():
        model.eval()
        for L in exp.lengths:
            x, y, mask = exp.task.sample(exp.n_eval, length=L, generator=torch.Generator().manual_seed(EVAL_SEED + L))
            errors[str(L)] = bit_errors(model(x.to(device)).cpu(), y, mask).int().tolist()
    result = {"kind": kind, "seed": seed, "steps": log["steps"], "curve": log["curve"],
              "lr_drop_step": log["lr_drop_step"], "curriculum": log["curriculum"], "errors": errors,
              "parameters": count_parameters(model), "train_cpu_seconds": round(train_cpu, 1),
              "cpu_seconds": round(time.process_time() - start_cpu, 1),
              "wall_seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads(),
              "pid": os.getpid()}
    return result, {k: v.detach().cpu() for k, v in model.state_dict().items()}


def training_error(result: dict, exp: CopyExperiment) -> float:
    """The fraction of wrong bits of a run's test sequences at the training lengths (those up to
    ``exp.train_max``); the run *fits* its training lengths when this is below ``exp.fit_below``."""
    lengths = [L for L in exp.lengths if L <= exp.train_max]
    if not lengths:
        raise ValueError(f"no test length is a training length (at most {exp.train_max}): {exp.lengths}")
    wrong = sum(sum(result["errors"][str(L)]) for L in lengths)
    return wrong / sum(exp.bits * L * len(result["errors"][str(L)]) for L in lengths)


def _seed_worker(kind, seed, exp_dict):
    exp = CopyExperiment(**{**exp_dict, "lengths": tuple(exp_dict["lengths"]),
                            "ntm": CopyRecipe(**exp_dict["ntm"]), "lstm": CopyRecipe(**exp_dict["lstm"])})
    return run_copy_seed(kind, seed, exp)


def run_copy_experiment(seeds, kinds=("ntm", "lstm"), exp: CopyExperiment | None = None, workers: int = 1,
                        on_result=None) -> dict:
    """Run :func:`run_copy_seed` for every kind and seed, in ``workers`` processes (one thread each).

    ``on_result(result, state_dict)`` is called as each run finishes (to log or save it). Returns
    the JSON-ready record: the experiment's configuration, every run, CPU and wall time."""
    exp = exp or CopyExperiment()
    jobs = [(k, int(s)) for s in seeds for k in kinds]
    if not jobs:
        raise ValueError("no seeds or no kinds to run")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    start = time.perf_counter()
    runs = []
    if workers == 1:
        for k, s in jobs:
            result, state = run_copy_seed(k, s, exp)
            runs.append(result)
            if on_result:
                on_result(result, state)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_seed_worker, k, s, exp.to_dict()) for k, s in jobs]
            for fut in as_completed(futures):
                result, state = fut.result()
                runs.append(result)
                if on_result:
                    on_result(result, state)
    runs.sort(key=lambda r: (r["kind"], r["seed"]))
    return {"config": exp.to_dict(), "runs": runs, "wall_seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in runs), 1), "workers": workers, "threads": 1}
