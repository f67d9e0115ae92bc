"""The site: it builds with warnings as errors, and renders offline in a real browser.

The book is built from the chapters executed in QUICK mode by test_chapters.py (execution off),
into _build/test-site/. A headless Chromium that cannot resolve any host but localhost then loads
the pages from a server that mounts the site under a sub-path, as GitHub Pages does, and checks
that MathJax typeset the math and Mermaid drew the diagrams.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import EXECUTED, ROOT, chapter_paths, execute_chapter

SITE = ROOT / "_build" / "test-site"
SUBPATH = "/working-memory-llm/"
pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def site() -> Path:
    """Build the book from the QUICK-executed chapters; return the html folder."""
    chapters = chapter_paths()
    for path in chapters:
        execute_chapter(path)  # reuses the runs of test_chapters.py in the same session
    src = SITE / "src"
    shutil.rmtree(SITE, ignore_errors=True)
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", "_build", ".git", "node_modules", "tests", ".jupyter_cache", "*.egg-info"))
    for path in chapters:
        shutil.copy(EXECUTED / path.name, src / path.relative_to(ROOT))
    config = yaml.safe_load((src / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(src), "--path-output", str(SITE), "--warningiserror",
                           "--keep-going"], capture_output=True, text=True)
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return SITE / "_build" / "html"


def pages(html: Path) -> dict[str, str]:
    return {p.relative_to(html).as_posix(): p.read_text() for p in html.rglob("*.html")}


def test_site_has_front_matter_and_every_chapter(site):
    built = pages(site)
    for doc in ["index.html", "book/intro.html", "book/setup.html", "book/bibliography.html"]:
        assert doc in built, f"{doc} missing from the site"
    for path in chapter_paths():
        page = built[f"chapters/{path.stem}.html"]
        assert page.count('class="exercise') >= 3, f"{path.stem}: exercises missing"
        assert "solution" in page and "dropdown" in page, f"{path.stem}: solutions are not in dropdowns"
        assert re.search(r'<img [^>]*src="[^"]*_images/[^"]+\.png"', page), f"{path.stem}: no figure"
        assert "colab.research.google.com" in page, f"{path.stem}: no Colab launch button"
        assert "Traceback" not in page and 'class="output traceback' not in page, f"{path.stem}: error output"
        assert "glue:" not in page, f"{path.stem}: an unresolved glue reference"


def test_site_loads_nothing_from_the_network(site):
    """Scripts and styles are all served by the site itself (MathJax, Mermaid included)."""
    remote = re.compile(r'<(?:script|link)[^>]+(?:src|href)="(https?:)?//[^"]+"')
    for name, page in pages(site).items():
        found = [m.group(0) for m in remote.finditer(page) if "colab" not in m.group(0)]
        assert not found, f"{name} loads remote resources: {found[:3]}"
        assert not re.search(r'<img [^>]*src="https?://', page), f"{name} shows a remote image"
    assert (site / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    assert (site / "_static" / "mermaid" / "mermaid.esm.min.mjs").exists()


@pytest.fixture(scope="module")
def server(site):
    """Serve _build/test-site/_build under SUBPATH, like a GitHub Pages project site."""
    mount = site.parent / SUBPATH.strip("/")
    if mount.exists() or mount.is_symlink():
        mount.unlink()
    mount.symlink_to(site, target_is_directory=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site.parent))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}{SUBPATH}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_bin = shutil.which("chromedriver")
    if not (chromium and driver_bin):
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium and chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def wait_for(driver, script: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.25)
    return value


@pytest.mark.parametrize("page, has_math", [("book/intro.html", False),
                                             ("chapters/ch05_transformer_from_scratch.html", True)])
def test_math_and_diagrams_render_offline(server, browser, page, has_math):
    browser.get(server + page)
    if has_math:
        typeset = wait_for(browser, "return document.querySelectorAll('mjx-container').length")
        assert typeset, f"{page}: MathJax typeset no math"
    drawn = wait_for(browser, "return document.querySelectorAll('.mermaid svg').length")
    assert drawn, f"{page}: Mermaid drew no diagram"
    errors = browser.execute_script(
        "return Array.from(document.querySelectorAll('.mermaid')).filter(e => /Syntax error/.test(e.textContent)).length")
    assert errors == 0, f"{page}: a Mermaid diagram failed to parse"
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    remote = [r for r in resources if not r.startswith(server.split(SUBPATH)[0])]
    assert not remote, f"{page} requested remote resources: {remote[:5]}"
