"""Build the Colab and student editions of every chapter.

    python book/tools/editions.py            # all chapters in _toc.yml
    python book/tools/editions.py ch05       # chapters whose file name contains "ch05"

writes

    _build/editions/colab/<chapter>.ipynb    for Colab and plain Jupyter
    _build/editions/student/<chapter>.ipynb  for students: no solutions

Both editions turn MyST (exercise and solution directives, admonitions, mermaid, glue, citations,
cross-references) into plain Markdown that Colab and Jupyter render, and put the set-up cell, which
installs wmlib, first. Numbers that the site glues into the prose are taken from the executed
notebooks of the last build (`make book` writes them to _build/jupyter_execute/; the test suite's
QUICK runs are the fallback).

The Colab edition keeps the solutions: their text in a collapsed <details> block, their code in
cells that Colab shows as a titled form (double-click to see the code). The student edition drops
the solution text and replaces the code between nbgrader's `### BEGIN SOLUTION` and
`### END SOLUTION` markers with a stub, so that running the notebook stops only at the checker
cells, each with a message that says the exercise is not done yet.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import sys
import zlib
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))
import sync  # noqa: E402

ROOT = sync.ROOT
OUT = ROOT / "_build" / "editions"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<body>[^`]*)`")
ADMONITIONS = {"note", "tip", "warning", "important", "caution", "attention", "danger", "error",
               "hint", "seealso", "admonition"}
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


# ------------------------------------------------------------------------------ references
def _bibliography() -> dict:
    from pybtex.database import parse_file

    return parse_file(str(ROOT / "book" / "references.bib")).entries


def _authors(entry) -> str:
    people = entry.persons.get("author", [])
    last = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
    if not last:
        return entry.fields.get("title", "?")
    if len(last) == 1:
        return last[0]
    if len(last) == 2:
        return f"{last[0]} and {last[1]}"
    return f"{last[0]} et al."


def _full_reference(key: str, entry) -> str:
    people = entry.persons.get("author", [])
    names = ", ".join(" ".join(p.first_names + p.middle_names + p.last_names) for p in people[:6])
    names += " et al." if len(people) > 6 else ""
    f = entry.fields
    venue = f.get("booktitle") or f.get("journal") or f.get("institution") or f.get("howpublished") or ""
    link = f.get("url") or (f"https://doi.org/{f['doi']}" if "doi" in f else "") or (
        f"https://arxiv.org/abs/{f['eprint']}" if "eprint" in f else "")
    text = f"{names} ({f.get('year', 'n.d.')}). {f.get('title', '')}. {venue}".strip().rstrip(".") + "."
    text = text.replace("{", "").replace("}", "").replace("\\", "")
    return f"- {text}" + (f" <{link}>" if link else "")


# ------------------------------------------------------------------------------ glue values
def _unquote(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text


def glued_values(nb_name: str) -> tuple[dict[str, str], str]:
    """Values glued by the executed notebook: from the last full build (myst-nb keeps them in
    _build/jupyter_execute/chapters/<name>.glue.json), else from the test suite's QUICK run."""
    stem = Path(nb_name).stem
    built = ROOT / "_build" / "jupyter_execute" / "chapters" / f"{stem}.glue.json"
    if built.exists():
        data = json.loads(built.read_text())
        return {k: _unquote(v.get("data", {}).get("text/plain", "")) for k, v in data.items()}, "published run"
    quick = ROOT / "_build" / "test-notebooks" / nb_name
    if quick.exists():
        values = {}
        for cell in nbformat.read(quick, as_version=4).cells:
            for out in cell.get("outputs", []):
                name = out.get("metadata", {}).get("scrapbook", {}).get("name")
                text = out.get("data", {}).get("application/papermill.record/text/plain")
                if name and text is not None:
                    values[name] = _unquote(text)
        return values, "QUICK run (the test suite's)"
    return {}, ""


# ------------------------------------------------------------------------------ MyST -> Markdown
class Converter:
    """Turns the MyST of one chapter into plain Markdown, keeping track of exercises and citations."""

    def __init__(self, glue: dict[str, str], site_url: str, bib):
        self.glue, self.site_url, self.bib = glue, site_url, bib
        self.exercises: dict[str, int] = {}
        self.cited: list[str] = []

    # roles ---------------------------------------------------------------------------------
    def _cite(self, role: str, body: str) -> str:
        keys = [k.strip() for k in body.split(",") if k.strip()]
        parts = []
        for k in keys:
            if k not in self.cited:
                self.cited.append(k)
            e = self.bib.get(k)
            who, year = (_authors(e), e.fields.get("year", "")) if e is not None else (k, "")
            parts.append(f"{who} ({year})" if role == "cite:t" else f"{who}, {year}")
        return "; ".join(parts) if role == "cite:t" else "(" + "; ".join(parts) + ")"

    def roles(self, text: str) -> str:
        def sub(m):
            role, body = m.group("role"), m.group("body")
            label = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^>]+)>$", body, re.S)
            shown = label.group("text") if label else body
            if role.startswith("cite"):
                return self._cite(role, body)
            if role.startswith("glue"):
                key = body.split("::")[-1]
                return f"**{self.glue[key]}**" if key in self.glue else f"`{key}` (computed when you run the notebook)"
            if role == "math":
                return f"${body}$"
            if role == "doc":
                target = label.group("target") if label else body
                page = (target if not target.startswith("/") else target[1:]).rsplit(".", 1)[0]
                return f"[{shown}]({self.site_url}{page}.html)" if self.site_url else shown
            if role == "eq":
                return f"({body})"
            return shown  # ref, numref, term, abbr, ...

        return ROLE.sub(sub, text)

    # directives ----------------------------------------------------------------------------
    def _split_options(self, body: list[str]) -> tuple[dict, list[str]]:
        opts, i = {}, 0
        while i < len(body) and re.match(r"^\s*:[\w-]+:", body[i]):
            k, _, v = body[i].strip()[1:].partition(":")
            opts[k] = v.strip()
            i += 1
        return opts, body[i:]

    def directive(self, name: str, arg: str, body: list[str]) -> list[str]:
        opts, body = self._split_options(body)
        text = self.markdown("\n".join(body)).strip("\n")
        if name in ("exercise", "exercise-start"):
            k = self.exercises.setdefault(opts.get("label", f"_ex{len(self.exercises)}"), len(self.exercises) + 1)
            title = f"Exercise {k}" + (f": {self.roles(arg)}" if arg else "")
            return ["---", "", f"### ✏️ {title}", "", text, ""]
        if name in ("solution", "solution-start"):
            k = self.exercises.get(arg.strip(), "")
            # A notebook cannot collapse several cells at once: the text goes into a closed
            # <details> block here, the solution's code cells become Colab forms (see build()).
            return [f"<details><summary><b>Solution to exercise {k}</b> (click to open)</summary>", "",
                    text, "", "</details>", ""]
        if name in ("exercise-end", "solution-end"):
            return []
        if name in ADMONITIONS:
            title = self.roles(arg) if name == "admonition" else name.capitalize()
            quoted = ["> " + line if line else ">" for line in text.splitlines()]
            return [f"> **{title}**", ">", *quoted, ""]
        if name == "mermaid":
            return self._mermaid("\n".join(body))
        if name == "math":
            return ["$$", "\n".join(body).strip(), "$$", ""]
        if name in ("code-block", "code", "code-cell"):
            return [f"```{arg.strip()}", "\n".join(body), "```", ""]
        if name in ("figure", "image"):
            return [f"![{text or opts.get('alt', '')}]({arg.strip()})", ""]
        if name in ("bibliography", "toctree", "tableofcontents", "glossary"):
            return [text, ""] if name == "glossary" else []
        return [f"> **{name}**" + (f" {arg}" if arg else ""), ">", *["> " + ln for ln in text.splitlines()], ""]

    @staticmethod
    def _mermaid(source: str) -> list[str]:
        # Colab does not draw Mermaid; mermaid.ink renders the diagram to an image (Colab is online).
        payload = json.dumps({"code": source.strip(), "mermaid": {"theme": "default"}}).encode()
        token = base64.urlsafe_b64encode(zlib.compress(payload, 9)).decode().rstrip("=")
        return [f"![diagram](https://mermaid.ink/img/pako:{token})", "",
                "<details><summary>Diagram source (Mermaid)</summary>", "", "```mermaid", source.strip(),
                "```", "", "</details>", ""]

    def markdown(self, text: str) -> str:
        lines, out, i = text.splitlines(), [], 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                out.append(self.roles(lines[i]))
                i += 1
                continue
            fence = m.group("fence")
            j, depth = i + 1, 0
            while j < len(lines):
                inner = FENCE.match(lines[j])
                if inner and inner.group("fence") == fence:
                    depth += 1
                elif lines[j].strip() == fence:
                    if depth == 0:
                        break
                    depth -= 1
                j += 1
            body = [ln[len(m.group("indent")):] for ln in lines[i + 1:j]]
            out.extend(self.directive(m.group("name"), m.group("arg"), body))
            i = j + 1
        return "\n".join(out)


# ------------------------------------------------------------------------------ editions
def stub_solution(source: str, exercise: str) -> str:
    """Replace every BEGIN/END SOLUTION region: inside a function, by a `raise NotImplementedError`
    (the checker reports it kindly); at top level, by a comment (nothing to run)."""
    out, skipping = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            skipping, indent = True, line[: len(line) - len(line.lstrip())]
            if indent:
                out.append(f"{indent}# YOUR CODE HERE ({exercise})")
                out.append(f"{indent}raise NotImplementedError(\"{exercise}: write your solution here\")")
            else:
                out.append(f"# YOUR CODE HERE ({exercise})")
            continue
        if stripped == END:
            skipping = False
            continue
        if not skipping:
            out.append(line)
    return "\n".join(out)


def build(path: Path, kind: str, bib) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    glue, label = glued_values(path.name)
    conv = Converter(glue, sync.site_url(), bib)
    cells, in_solution, exercise = [], False, ""
    setup = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell in setup:
            continue
        cell = copy.deepcopy(cell)
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type == "markdown":
            starts = re.search(r"\{solution-start\}\s*(\S+)", cell.source)
            if starts:
                in_solution, exercise = True, starts.group(1)
            ends = "{solution-end}" in cell.source
            text = conv.markdown(cell.source)
            if in_solution and kind == "student":
                text = ""  # the student edition keeps no solution text
            if ends:
                in_solution = False
            if text.strip():
                cell.source = text
                cells.append(cell)
            continue
        cell.outputs, cell.execution_count = [], None
        if BEGIN in cell.source or in_solution:
            k = conv.exercises.get(exercise, "")
            name = f"Exercise {k}" if k else "this exercise"
            if kind == "student":
                cell.source = stub_solution(cell.source, name)
            else:
                cell.source = f"#@title Solution to {name.lower()} (double-click to show the code)\n" + cell.source
                cell.metadata["cellView"] = "form"
        cells.append(cell)
    # In Colab, installing comes first; then the parameters.
    for c in setup:
        c = copy.deepcopy(c)
        c.metadata["tags"] = [t for t in c.metadata.get("tags", []) if t != "hide-cell"]
        c.outputs, c.execution_count = [], None
        cells.insert(0, c)
    intro = nbformat.v4.new_markdown_cell(
        f"*{'Colab' if kind == 'colab' else 'Student'} edition of a chapter of "
        f"[Working Memory in Large Language Models]({conv.site_url}), generated from "
        f"`{path.relative_to(ROOT).as_posix()}`. Run the first cell to install the book's library. "
        + ("Numbers quoted in the text come from the book's " + label + "; your run recomputes them."
           if label else "Numbers in the text are computed when you run the notebook.")
        + (" Solutions are removed: each exercise's checker tells you what is still missing."
           if kind == "student" else "") + "*")
    cells.insert(0, intro)
    if kind == "student":  # its Colab link opens the student edition itself, not the one with solutions
        for c in cells:
            if c.cell_type == "markdown" and sync.BADGE.search(c.source):
                c.source = sync.BADGE.sub(f"[Open in Colab]({sync.colab_url(path, 'student')})", c.source, count=1)
                break
    if conv.cited:
        refs = [_full_reference(k, bib[k]) for k in conv.cited if k in bib]
        cells.append(nbformat.v4.new_markdown_cell("## References\n\n" + "\n".join(refs)))
    nb.cells = cells
    nb.metadata.setdefault("colab", {})["provenance"] = []
    nb.metadata.pop("jupytext", None)
    nb.metadata["accelerator"] = "GPU"
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="*", help="substrings of chapter file names (default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    bib = _bibliography()
    chapters = [p for p in sync.chapters() if not args.chapters or any(s in p.name for s in args.chapters)]
    for kind in ("colab", "student"):
        (args.out / kind).mkdir(parents=True, exist_ok=True)
        for path in chapters:
            nb = build(path, kind, bib)
            nbformat.validate(nb)
            nbformat.write(nb, args.out / kind / path.name)
    print(f"wrote {len(chapters)} Colab and {len(chapters)} student editions under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
