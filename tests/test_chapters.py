"""Every chapter in the table of contents runs top to bottom in QUICK mode and shows no errors.

The chapters assert what they demonstrate, so executing them is the test. Their executed copies
(under _build/test-notebooks/) are reused by the site test.
"""

import re

import pytest

from conftest import chapter_paths

CHAPTERS = chapter_paths()
NOISE = re.compile(r"Traceback|Error|Warning|warn\(", re.I)


@pytest.mark.notebook
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_quick_without_errors(path, executed_chapter):
    nb = executed_chapter(path)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"cell {i} raised {out.get('ename')}: {out.get('evalue')}"
            if out.output_type == "stream" and out.name == "stderr":
                assert not NOISE.search(out.text), f"cell {i} wrote to stderr:\n{out.text[:500]}"


def test_chapters_follow_the_house_rules():
    """Parameters cell first, a set-up cell rendered from _config.yml, a Colab badge, no outputs."""
    import sync

    problems = {p.name: sync.problems(p, fix=False) for p in CHAPTERS}
    assert not any(problems.values()), problems


def test_every_chapter_has_exercises_solutions_and_checkers():
    import nbformat

    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        exercises = re.findall(r"```\{exercise\}", text)
        solutions = re.findall(r"```\{solution(?:-start)?\}", text)
        assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises (at least 3)"
        assert len(solutions) >= len(exercises), f"{path.name}: every exercise needs a solution"
        assert "### BEGIN SOLUTION" in text and "wmlib.exercises" in text, f"{path.name}: nbgrader markers, checkers"
