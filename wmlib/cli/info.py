"""``wmlib info``: versions, the device, and which models and data sets are available locally."""

from __future__ import annotations

import json
import platform


def collect() -> dict:
    import torch
    import transformers

    from .. import __version__
    from ..data import _SOURCES, _checksums, cache_root, data_dir
    from ..models import local_model_status
    from ..utils import get_device

    root = data_dir()
    data = {}
    for src in _SOURCES:
        files = [rel for rel in _checksums() if rel.startswith(src.folder)]
        present = sum((root / rel).exists() for rel in files)
        data[src.folder.split("/")[0]] = f"{present}/{len(files)} files present"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "versions": {"wmlib": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "device": str(get_device("auto")) + (f" ({gpu})" if gpu else ""),
        "cpu_threads": torch.get_num_threads(),
        "models": local_model_status(),
        "data_dir": str(root),
        "data": data,
        "cache_dir": str(cache_root()),
    }


def run(args) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("wmlib " + info["versions"]["wmlib"])
    print("  versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k != "wmlib"))
    print(f"  device:   {info['device']} ({info['cpu_threads']} CPU threads)")
    print("  models (packaged, offline):")
    for name, where in info["models"].items():
        print(f"    {name:14s} {where}")
    print(f"  data dir: {info['data_dir']}  (set WMLIB_DATA_DIR to change)")
    for name, status in info["data"].items():
        print(f"    {name:22s} {status}  (missing files are downloaded on first use)")
    print(f"  cache:    {info['cache_dir']}  (set WMLIB_CACHE_DIR to change)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, device, local models and data sets")
    p.add_argument("--json", action="store_true", help="print the information as JSON")
    p.set_defaults(func=run)
