"""Checkers for the book's exercises, one module per chapter.

Usage in a chapter::

    from wmlib.exercises import ch05
    ch05.check_grouped_query_attention(my_grouped_query_attention)

A checker prints a line starting with a check mark when the answer is right. When it is wrong it
raises :class:`ExerciseFailure` (an ``AssertionError``, so nbgrader and pytest count it as a failed
test) whose message says *what* is wrong -- a shape, rows that do not sum to 1, a missing scale --
and which Jupyter shows as that message alone, without a traceback.
"""

from ._core import ExerciseFailure, ExerciseIncomplete, call, expect_close, expect_tensor, passed

__all__ = ["ExerciseFailure", "ExerciseIncomplete", "call", "expect_close", "expect_tensor", "passed"]
