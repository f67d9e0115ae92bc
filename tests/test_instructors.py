"""The instructors' page suggests a problem set for every chapter, naming only exercises that exist."""

import re
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [ROOT / f"{c['file']}.ipynb" for part in toc["parts"] for c in part.get("chapters", [])
            if c["file"].startswith("chapters/")]


def _rows() -> dict[int, str]:
    text = (ROOT / "book" / "instructors.md").read_text()
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"^\| (\d+) [^\n]*$", text, re.M)}


def test_every_chapter_has_a_problem_set_naming_its_exercises():
    rows = _rows()
    for path in _toc_chapters():
        n = int(path.name[2:4])
        assert n in rows, f"book/instructors.md has no problem-set row for chapter {n}"
        labels = set()
        for cell in nbformat.read(path, 4).cells:
            if cell.cell_type == "markdown":
                labels |= {int(k) for k in re.findall(rf":label: ex-{n}-(\d+)", cell.source)}
        listed = {int(k) for k in re.findall(rf"\b{n}\.(\d+)\b", rows[n])}
        assert listed, f"the row for chapter {n} names no exercise"
        assert listed <= labels, f"chapter {n}: the row names exercises {sorted(listed - labels)} it lacks"
        assert labels <= listed, f"chapter {n}: exercises {sorted(labels - listed)} are missing from its row"
