"""The machinery shared by every chapter's checkers."""

from __future__ import annotations

import math

import torch


class ExerciseFailure(AssertionError):
    """A wrong answer: what is wrong, and a hint. Jupyter shows only this message (no traceback)."""

    def __init__(self, exercise: str, message: str, hint: str | None = None):
        self.exercise, self.message, self.hint = exercise, message, hint
        text = f"✗ {exercise}: {message}" + (f"\n  Hint: {hint}" if hint else "")
        super().__init__(text)

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of printing a traceback
        return str(self).splitlines()


class ExerciseIncomplete(ExerciseFailure):
    """The exercise still raises NotImplementedError: nothing to check yet."""


class Passed:
    """What a checker returns on success: true in an ``assert``, and invisible as a cell's value
    (the ✓ line has already been printed)."""

    def __bool__(self) -> bool:
        return True

    def _ipython_display_(self) -> None:
        pass

    def __repr__(self) -> str:
        return "Passed()"


def passed(exercise: str, message: str = "correct") -> Passed:
    print(f"✓ {exercise}: {message}")
    return Passed()


def call(exercise: str, fn, *args, **kwargs):
    """Call the student's function, turning its exceptions into friendly checker messages."""
    if not callable(fn):
        raise ExerciseFailure(exercise, f"expected a function, got {type(fn).__name__}: {fn!r}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseIncomplete(
            exercise, "not attempted yet.",
            "replace the `raise NotImplementedError` line in the cell above with your code, run that "
            "cell, then run this one again.",
        ) from None
    except ExerciseFailure:
        raise
    except Exception as err:
        raise ExerciseFailure(exercise, f"your function raised {type(err).__name__}: {err}") from None


def expect_int(exercise: str, value) -> int:
    """``value`` as an int: a float with no fractional part counts as one, anything else fails."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ExerciseFailure(exercise, f"return an int, got {type(value).__name__}: {value!r}")
    return value


def expect_float(exercise: str, value, what: str | None = None) -> float:
    """``value`` as a float (anything ``float()`` accepts); anything else fails with its type."""
    try:
        return float(value)
    except (TypeError, ValueError):
        need = f"{what} should be a number" if what else "return a number"
        raise ExerciseFailure(exercise, f"{need}, got {type(value).__name__}: {value!r}") from None


def expect_tensor(exercise: str, value, shape=None, dtype=None, name: str = "your result") -> torch.Tensor:
    """Check that ``value`` is a tensor of the given shape (a tuple; None entries match anything)
    and dtype, with no NaN or infinity; return it."""
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailure(exercise, f"{name} should be a torch.Tensor, got {type(value).__name__}")
    if shape is not None:
        ok = value.dim() == len(shape) and all(s is None or s == v for s, v in zip(shape, value.shape))
        if not ok:
            want = tuple("any" if s is None else s for s in shape)
            raise ExerciseFailure(exercise, f"{name} has shape {tuple(value.shape)}, expected {want}")
    if dtype is not None and value.dtype != dtype:
        raise ExerciseFailure(exercise, f"{name} has dtype {value.dtype}, expected {dtype}")
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise ExerciseFailure(exercise, f"{name} contains NaN or infinite values")
    return value


def expect_close(exercise: str, got, want, what: str, rtol: float = 1e-4, atol: float = 1e-5, hint=None):
    """Compare numbers or tensors; the failure message shows both values (or the largest gap)."""
    if isinstance(want, torch.Tensor):
        got = expect_tensor(exercise, got, shape=tuple(want.shape), name=what)
        if not torch.allclose(got.to(want.dtype), want, rtol=rtol, atol=atol):
            gap = (got.to(want.dtype) - want).abs().max().item()
            raise ExerciseFailure(exercise, f"{what} is off by up to {gap:.3g}", hint)
        return
    g = expect_float(exercise, got, what)
    if not math.isclose(g, float(want), rel_tol=rtol, abs_tol=atol):
        raise ExerciseFailure(exercise, f"{what} is {got!r}, expected {want!r}", hint)
