"""Keep what every chapter repeats in step with the one place it is defined.

_config.yml names the repository (URL and branch), wmlib/packaged_models.txt the packaged models'
pins and pyproject.toml wmlib's extras. Every chapter notebook carries, derived from them:
  - an "Open in Colab" link in its first Markdown cell (the line that starts with [Open in Colab]),
  - a set-up cell (tagged `setup`) that installs, where wmlib is missing, wmlib with the extras this
    chapter needs (found from what it imports) and the packaged models it uses, and nothing else,
  - nbgrader metadata: solution cells (code between ### BEGIN/END SOLUTION, gated solution text)
    and autograded test cells (those calling a wmlib.exercises checker), so that
    `nbgrader generate_assignment` works on the sources as they are.

    python book/tools/sync.py          rewrite them
    python book/tools/sync.py --check  exit 1 and list the chapters that differ (the tests run this)

It also checks the house rules every chapter must follow: a `parameters` cell first among the code
cells, defining QUICK and SEED; no committed outputs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
BADGE = re.compile(r"^\[Open in Colab\]\(https://colab\.research\.google\.com/.*?\)$", re.M)


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def repo() -> tuple[str, str]:
    r = config()["repository"]
    return r["url"].rstrip("/"), r.get("branch", "main")


def site_url() -> str:
    """Where the publishing workflow serves the book (GitHub Pages of the repository)."""
    url, _ = repo()
    owner, name = url.replace("https://github.com/", "").split("/")[:2]
    return f"https://{owner}.github.io/{name}/"


def chapters() -> list[Path]:
    """Chapter notebooks in table-of-contents order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


# a module a chapter (or a wmlib module it imports) imports -> the wmlib extra that installs it
EXTRAS = {"faiss": "faiss", "sklearn": "sklearn", "pandas": "pandas"}


def _code(nb) -> str:
    return "\n".join(c.source for c in nb.cells
                     if c.cell_type == "code" and "setup" not in c.metadata.get("tags", []))


def chapter_needs(nb) -> tuple[list[str], list[str]]:
    """The wmlib extras and the packaged-model pins a chapter needs: extras from the modules its
    code imports, directly or through the wmlib modules it imports; models from the packaged names
    its code mentions (``"smollm2-135m"`` also needs the ``gguf`` extra to read its file)."""
    sys.path.insert(0, str(ROOT))
    from wmlib.models import MODELS

    code = _code(nb)
    texts = [code]
    for mod in sorted(set(re.findall(r"^\s*(?:from|import)\s+wmlib\.([\w.]+)", code, re.M))):
        path = ROOT / "wmlib" / (mod.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / "wmlib" / mod.replace(".", "/") / "__init__.py"
        if path.exists():
            texts.append(path.read_text())
    extras = {extra for module, extra in EXTRAS.items() for t in texts
              if re.search(rf"^\s*(?:import|from)\s+{module}\b", t, re.M)}
    specs = [spec for name, spec in MODELS.items() if re.search(rf"[\"']{re.escape(name)}[\"']", code)]
    if any(spec.gguf for spec in specs):
        extras.add("gguf")
    return sorted(extras), [spec.package for spec in specs]


def colab_branch() -> str:
    """The branch the publishing workflow fills with the Colab editions (same paths as sources)."""
    return config().get("sphinx", {}).get("config", {}).get("wm_colab_branch") or repo()[1]


# Where the publishing workflow puts each edition on the Colab branch (see .github/workflows/book.yml)
EDITION_FOLDERS = {"colab": "chapters", "student": "student"}


def colab_url(nb_path: Path, edition: str = "colab") -> str:
    """The Colab address of a chapter's ``edition``: the Colab edition sits at the source's own path,
    the student edition (no solutions) under ``student/``."""
    url, _ = repo()
    gh = url.replace("https://github.com/", "")
    folder = EDITION_FOLDERS[edition]
    return f"https://colab.research.google.com/github/{gh}/blob/{colab_branch()}/{folder}/{nb_path.name}"


def badge(nb_path: Path) -> str:
    # A text link, not the usual badge image: the image would be the only remote resource on the
    # page, and pages must render offline.
    return f"[Open in Colab]({colab_url(nb_path)})"


def setup_source(nb) -> str:
    url, branch = repo()
    extras, models = chapter_needs(nb)
    wmlib = f"wmlib[{','.join(extras)}]" if extras else "wmlib"
    lines = [
        "# Set-up. In Colab, or anywhere wmlib is not installed yet, this installs the book's library with",
        "# what this chapter needs" + (" and the packaged models it uses (the same ones the published pages ran)."
                                       if models else "."),
        "import importlib.util",
        "",
        "if importlib.util.find_spec(\"wmlib\") is None:",
        f"    %pip install -q \"{wmlib} @ git+{url}@{branch}\"",
    ]
    if models:
        lines.append(f"    %pip install -q --no-deps {' '.join(models)}")
    return "\n".join(lines)


CHECKER = re.compile(r"\bch\d+\.check_\w+\(")


def nbgrader_metadata(nb, stem: str) -> list[dict | None]:
    """nbgrader cell metadata derived from the chapter's own markers, one entry per cell:
    code with ### BEGIN SOLUTION and the text of a gated solution are solution cells; cells that
    call a wmlib.exercises checker are autograded test cells worth one point."""
    out, label, in_solution, n = [], "x", False, 0
    for cell in nb.cells:
        m = re.search(r"\{(?:solution-start|solution)\}\s*(\S+)", cell.source)
        if m:
            label, in_solution = m.group(1), True
        meta = None
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            n += 1
            meta = {"grade": False, "grade_id": f"{stem}-{label}-solution-{n}", "locked": False,
                    "schema_version": 3, "solution": True, "task": False}
        elif cell.cell_type == "markdown" and in_solution and m:
            # nbgrader needs markdown answers to be (manually) graded; 0 points leaves the
            # weighting to the instructor, who can raise it in the formgrader.
            meta = {"grade": True, "grade_id": f"{stem}-{label}-answer", "locked": False, "points": 0,
                    "schema_version": 3, "solution": True, "task": False}
        elif cell.cell_type == "code" and CHECKER.search(cell.source):
            n += 1
            meta = {"grade": True, "grade_id": f"{stem}-{label}-check-{n}", "locked": True, "points": 1,
                    "schema_version": 3, "solution": False, "task": False}
        if "{solution-end}" in cell.source:
            in_solution = False
        out.append(meta)
    return out


def problems(nb_path: Path, fix: bool) -> list[str]:
    nb = nbformat.read(nb_path, as_version=4)
    out, changed = [], False
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "parameters" not in code[0].metadata.get("tags", []):
        out.append("the first code cell must be tagged `parameters`")
    elif not all(re.search(rf"^{name}\s*=", code[0].source, re.M) for name in ("QUICK", "SEED")):
        out.append("the parameters cell must define QUICK and SEED")
    if any(c.get("outputs") or c.get("execution_count") for c in code):
        out.append("has outputs committed (clear them: the build executes the notebook)")
    setup = [c for c in code if "setup" in c.metadata.get("tags", [])]
    if len(setup) != 1:
        out.append(f"needs exactly one code cell tagged `setup` (found {len(setup)})")
    else:
        want = setup_source(nb)
        if setup[0].source != want:
            out.append("its set-up cell differs from the one rendered from _config.yml")
            setup[0].source, changed = want, True
        if "hide-cell" not in setup[0].metadata.get("tags", []):
            # The site collapses it: readers of the web page need not install anything.
            out.append("its set-up cell differs from the one rendered from _config.yml (tag hide-cell)")
            setup[0].metadata["tags"] = setup[0].metadata.get("tags", []) + ["hide-cell"]
            changed = True
    md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if md is None or not BADGE.search(md.source):
        out.append("its first Markdown cell needs an '[Open in Colab](...)' line")
    elif BADGE.search(md.source).group(0) != badge(nb_path):
        out.append("its Colab badge differs from the one rendered from _config.yml")
        md.source, changed = BADGE.sub(badge(nb_path), md.source, count=1), True
    # An exercise's statement and its gated solution must be separate cells: nbgrader (and the
    # student edition) replace the solution cell wholesale.
    for i, cell in enumerate(list(nb.cells)):
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            before, sep, after = cell.source.partition("```{solution-start}")
            if before.strip():
                out.append("an exercise and its solution text share a cell (they must be split)")
                cell.source = sep + after
                nb.cells.insert(nb.cells.index(cell), nbformat.v4.new_markdown_cell(before.rstrip()))
                changed = True
        # Likewise the end of a solution closes its cell: what follows (the next exercise, say)
        # would otherwise be replaced with the solution.
        if cell.cell_type == "markdown" and "{solution-end}" in cell.source:
            m = re.search(r"```\{solution-end\}[^\n]*\n```[ \t]*\n?", cell.source)
            if m and cell.source[m.end():].strip():
                out.append("a solution's end and the text after it share a cell (they must be split)")
                rest = cell.source[m.end():].lstrip("\n")
                cell.source = cell.source[:m.end()].rstrip()
                nb.cells.insert(nb.cells.index(cell) + 1, nbformat.v4.new_markdown_cell(rest))
                changed = True
    for cell, meta in zip(nb.cells, nbgrader_metadata(nb, nb_path.stem)):
        if cell.metadata.get("nbgrader") != meta:
            out.append("its nbgrader metadata differs from the one derived from its markers")
            if meta is None:
                cell.metadata.pop("nbgrader", None)
            else:
                cell.metadata["nbgrader"] = meta
            changed = True
    if fix and changed:
        nbformat.write(nb, nb_path)
    return out


def readme_problems() -> list[str]:
    """README.md and the introduction name the repository and the site as _config.yml does."""
    url, branch = repo()
    text = (ROOT / "README.md").read_text()
    out = []
    found = set(re.findall(r"git\+(https://github\.com/[^@\s\"]+@[\w.-]+)", text))
    want = f"{url}@{branch}"
    out += [f"README.md: install URL {f} differs from _config.yml ({want})" for f in found if f != want]
    raw = url.replace("https://github.com/", "https://raw.githubusercontent.com/") + f"/{branch}/"
    out += [f"README.md: {f} differs from _config.yml's repository ({raw})"
            for f in set(re.findall(r"https://raw\.githubusercontent\.com/[^/\s]+/[^/\s]+/[^/\s]+/", text)) if f != raw]
    for page in ("README.md", "book/intro.md"):
        sites = set(re.findall(r"https://[\w.-]+\.github\.io/[\w.-]+/", (ROOT / page).read_text()))
        if sites != {site_url()}:
            out.append(f"{page}: must give the site's address {site_url()} (found {sorted(sites) or 'none'})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report; exit 1 on any difference")
    args = ap.parse_args(argv)
    bad = 0
    for nb in chapters():
        for p in problems(nb, fix=not args.check):
            fixable = "differs from the one" in p or "must be split" in p
            if args.check or not fixable:
                bad += 1
                print(f"{nb.relative_to(ROOT)}: {p}")
    for p in readme_problems():
        bad += 1
        print(p)
    if bad and args.check:
        print("Run `make sync` to rewrite the derived cells; fix the others by hand.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
