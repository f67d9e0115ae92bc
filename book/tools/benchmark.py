"""Measure the book's speed targets and print them: chapter run times (QUICK and full) against the
budgets of CURRICULUM.md, and the load time of the packaged models (cold and cached).

    python book/tools/benchmark.py                     # every chapter, QUICK and full, and models
    python book/tools/benchmark.py --mode quick ch05   # chapters whose file name contains "ch05"
    python book/tools/benchmark.py --json bench.json   # also write the figures as JSON

Budgets on a 2-core CPU: QUICK <= 90 s, full <= 360 s per chapter. The machine should be otherwise
idle: the figures are wall-clock times.
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


def run_chapter(path: Path, quick: bool) -> tuple[float, str]:
    import papermill as pm

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(path), str(Path(tmp) / path.name), parameters={"QUICK": quick},
                                kernel_name="python3", cwd=str(path.parent), progress_bar=False)
            status = "ok"
        except pm.PapermillExecutionError as err:
            status = f"FAILED: {err.ename}"
        return time.perf_counter() - start, status


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
    args = ap.parse_args(argv)

    os.environ.setdefault("WMLIB_PROGRESS", "off")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    chapters = [p for p in sync.chapters() if not args.chapters or any(s in p.name for s in args.chapters)]
    modes = ["quick", "full"] if args.mode == "both" else [args.mode]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(chapters)} chapters, modes {modes}, {os.cpu_count()} CPUs, load average {load:.2f}")
    results: dict = {"chapters": {}, "models": {}, "cpus": os.cpu_count(), "load_before": load}
    print(f"{'chapter':45s} {'mode':6s} {'seconds':>8s} {'budget':>7s}  status")
    for path in chapters:
        for mode in modes:
            seconds, status = run_chapter(path, quick=(mode == "quick"))
            within = seconds <= BUDGET[mode]
            results["chapters"].setdefault(path.stem, {})[mode] = {
                "seconds": round(seconds, 1), "within_budget": within, "status": status}
            flag = "" if within else "  OVER BUDGET"
            print(f"{path.stem:45s} {mode:6s} {seconds:8.1f} {BUDGET[mode]:7.0f}  {status}{flag}", flush=True)
    if not args.no_models:
        for what, seconds in model_load_times().items():
            results["models"][what] = round(seconds, 2)
            print(f"{what:45s} {seconds:8.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    failed = any(m["status"] != "ok" for c in results["chapters"].values() for m in c.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
