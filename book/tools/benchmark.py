"""Measure the book's speed targets and print them: chapter run times (QUICK and full) against the
budgets of CURRICULUM.md, and the load time of the packaged models (cold and cached).

    python book/tools/benchmark.py                     # every chapter, QUICK and full, and models
    python book/tools/benchmark.py --mode quick ch05   # chapters whose file name contains "ch05"
    python book/tools/benchmark.py --json bench.json   # also write the figures as JSON
    python book/tools/benchmark.py --from-builds       # read the times of the last `make test`
                                                       # (QUICK) and `make book` (full) runs

Budgets on a 2-core CPU: QUICK <= 90 s, full <= 360 s per chapter. The machine should be otherwise
idle: the budgets are wall-clock times. The kernel's CPU time (user + system, over all threads) is
printed beside them: it does not grow when the machine is busy, so it tells a slow run on a busy
machine from a slow chapter. With --from-builds nothing is executed: QUICK times come from
papermill's record in the notebooks `make test` executed (_build/test-notebooks), full times from the
execution cache of `make book` (_build/.jupyter_cache).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import sync  # noqa: E402

BUDGET = {"quick": 90.0, "full": 360.0}


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_chapter(path: Path, quick: bool) -> tuple[float, float | None, str]:
    """Wall seconds, CPU seconds of the kernel (user + system, all its threads) and a status."""
    import papermill as pm

    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), _children_cpu()
        try:
            pm.execute_notebook(str(path), str(Path(tmp) / path.name), parameters={"QUICK": quick},
                                kernel_name="python3", cwd=str(path.parent), progress_bar=False)
            status = "ok"
        except pm.PapermillExecutionError as err:
            status = f"FAILED: {err.ename}"
        return time.perf_counter() - start, _children_cpu() - cpu, status


def recorded_times(root: Path) -> dict[str, dict[str, float]]:
    """Chapter run times recorded by the last test run (QUICK) and book build (full), by file stem."""
    import nbformat

    out: dict[str, dict[str, float]] = {}
    for nb_path in sorted((root / "_build" / "test-notebooks").glob("ch*.ipynb")):
        seconds = nbformat.read(nb_path, 4).metadata.get("papermill", {}).get("duration")
        if seconds is not None:
            out.setdefault(nb_path.stem, {})["quick"] = float(seconds)
    cache = root / "_build" / ".jupyter_cache"
    if cache.exists():
        from jupyter_cache import get_cache

        for rec in get_cache(str(cache)).list_cache_records():
            seconds = (rec.data or {}).get("execution_seconds")
            if seconds is not None:
                out.setdefault(Path(rec.uri).stem, {})["full"] = float(seconds)
    return out


def model_load_times() -> dict[str, float]:
    """Seconds to load each packaged model in a fresh process: the first call (which may convert a
    GGUF file when the cache is empty) and a second call (from the cache)."""
    code = (
        "import time, sys; from wmlib.models import load_causal_lm, load_encoder\n"
        "f = load_causal_lm if sys.argv[1] == 'causal' else load_encoder\n"
        "t = time.perf_counter(); f(sys.argv[2]); print(time.perf_counter() - t)\n"
    )
    out = {}
    for kind, name in (("causal", "smollm2-135m"), ("encoder", "minilm-l6")):
        for label in ("first", "second"):
            proc = subprocess.run([sys.executable, "-c", code, kind, name], capture_output=True, text=True,
                                  check=True)
            out[f"{name} load ({label})"] = float(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="*", help="substrings of chapter file names (default: all)")
    ap.add_argument("--mode", choices=["quick", "full", "both"], default="both")
    ap.add_argument("--no-models", action="store_true", help="skip the model load timings")
    ap.add_argument("--json", type=Path, help="write the results to this file")
    ap.add_argument("--from-builds", action="store_true",
                    help="report the times recorded by the last `make test` and `make book` instead of running")
    args = ap.parse_args(argv)

    os.environ.setdefault("WMLIB_PROGRESS", "off")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    chapters = [p for p in sync.chapters() if not args.chapters or any(s in p.name for s in args.chapters)]
    modes = ["quick", "full"] if args.mode == "both" else [args.mode]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(chapters)} chapters, modes {modes}, {os.cpu_count()} CPUs, load average {load:.2f}")
    results: dict = {"chapters": {}, "models": {}, "cpus": os.cpu_count(), "load_before": load}
    print(f"{'chapter':45s} {'mode':6s} {'seconds':>8s} {'CPU s':>7s} {'budget':>7s}  status")
    recorded = recorded_times(Path(__file__).resolve().parents[2]) if args.from_builds else {}
    for path in chapters:
        for mode in modes:
            if args.from_builds:
                if mode not in recorded.get(path.stem, {}):
                    print(f"{path.stem:45s} {mode:6s} {'-':>8s} {'-':>7s} {BUDGET[mode]:7.0f}  not recorded")
                    continue
                seconds, cpu, ran, status = recorded[path.stem][mode], None, True, "ok (recorded)"
            else:
                seconds, cpu, status = run_chapter(path, quick=(mode == "quick"))
                ran = status == "ok"
            within = seconds <= BUDGET[mode]
            results["chapters"].setdefault(path.stem, {})[mode] = {
                "seconds": round(seconds, 1), "cpu_seconds": None if cpu is None else round(cpu, 1),
                "within_budget": within, "ran": ran, "status": status}
            flag = "" if within else "  OVER BUDGET"
            cpu_text = "-" if cpu is None else f"{cpu:.1f}"
            print(f"{path.stem:45s} {mode:6s} {seconds:8.1f} {cpu_text:>7s} {BUDGET[mode]:7.0f}  {status}{flag}",
                  flush=True)
    if not args.no_models and not args.from_builds:
        for what, seconds in model_load_times().items():
            results["models"][what] = round(seconds, 2)
            print(f"{what:45s} {seconds:8.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    # exit 1 when a chapter failed to run; a budget overrun is a figure to read, not a failure
    failed = any(not m["ran"] for c in results["chapters"].values() for m in c.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
