"""``wmlib probe``: the working-memory benchmark of Chapter 14, after lm-evaluation-harness.

    wmlib probe ls
    wmlib probe run --tasks needle,vt --model smollm2-135m --quick --output-path results/ --log-samples
    wmlib probe run --tasks all --model Qwen/Qwen2.5-1.5B-Instruct --model-args dtype=bfloat16 \\
        --device cuda --lengths 1024,4096,16384 --limit 20 --output-path results/ --plot
    wmlib probe run --tasks niah_single,vt --kv-policy full,window:256,sinks:4+252,h2o:256 --lengths 256,512,1024

``run`` prints a table (every score with its 95 % interval, each task's effective length) and,
with ``--output-path DIR``, writes ``DIR/<model>/results_<date>.json`` (scores, intervals, settings,
versions, device, dtype, prompt settings), with ``--log-samples`` one ``samples_<task>_<date>.jsonl``
per task, and with ``--plot`` the heatmaps and curves as ``plot_<date>.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ._args import dtype_name, nonnegative_int, positive_int

_MODEL_ARGS = {"dtype": dtype_name, "revision": str, "max_context": positive_int, "batch_tokens": positive_int,
               "max_batch": positive_int}


def model_args(text: str) -> dict:
    """``dtype=bfloat16,batch_tokens=4096`` -> dict, each value checked."""
    out = {}
    for part in [p for p in str(text).split(",") if p.strip()]:
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not value.strip():
            raise argparse.ArgumentTypeError(f"expected key=value pairs, e.g. dtype=bfloat16; got {part!r}")
        if key not in _MODEL_ARGS:
            raise argparse.ArgumentTypeError(f"unknown model argument {key!r}; accepted: {', '.join(_MODEL_ARGS)}")
        out[key] = _MODEL_ARGS[key](value.strip())
    return out


def lengths(text: str) -> list[int]:
    """Context lengths in tokens: whole numbers from 32 to 1,048,576."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated lengths in tokens, e.g. 256,512; got {text!r}")
    out = []
    for p in parts:
        value = positive_int(p)
        if not 32 <= value <= 1 << 20:
            raise argparse.ArgumentTypeError(f"a length must lie in [32, 1048576] tokens, got {value}")
        out.append(value)
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"a length is listed twice: {text!r}")
    return sorted(out)


def kv_policies(text: str) -> list[str]:
    """``full,window:256,sinks:4+252,h2o:256`` -> the policy labels, each checked."""
    from ..probes.memory import parse_policy

    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected KV policies, e.g. full,window:256")
    try:
        labels = [parse_policy(p).label for p in parts]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if len(set(labels)) != len(labels):
        raise argparse.ArgumentTypeError(f"a policy is listed twice: {text!r}")
    return labels


def threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text!r}")
    return value


def task_settings(text: str) -> dict:
    """``'{"vt": {"hops": 2}}'``: settings per task."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"vt\": {{\"hops\": 2}}}}': {err.msg}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise argparse.ArgumentTypeError("expected a JSON object of task name -> settings, e.g. '{\"vt\": {\"hops\": 2}}'")
    return value


def output_path(text: str) -> Path:
    """A folder to write into, or a file ending in .json for the results."""
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a folder (or a .json file), got an empty string")
    path = Path(text).expanduser()
    if path.suffix != ".json" and path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file; name a folder (or a .json file) to write into")
    if path.suffix == ".json" and path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; drop the .json or name a file inside it")
    return path


def _check_writable(path: Path) -> None:
    """Create the output folder and try a file in it now, before an hour of probing, not after."""
    folder = path.parent if path.suffix == ".json" else path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".wmlib-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write to --output-path {str(folder)!r}: {err.strerror or err}") from None


def run_ls(args) -> int:
    from ..probes import GROUPS, TASKS

    width = max(len(n) for n in TASKS)
    print(f"{'task':<{width}}  {'group':<9} {'axes':<16} description")
    for name, task in TASKS.items():
        print(f"{name:<{width}}  {task.group:<9} {' x '.join(task.axes):<16} {task.description}")
    print("\ngroups: " + "; ".join(f"{g} = {', '.join(ts) if g != 'all' else 'every task'}" for g, ts in GROUPS.items()))
    return 0


def run(args) -> int:
    from ..probes import ProbeLM, evaluate, get_tasks

    if (args.log_samples or args.plot) and args.output_path is None:
        raise ValueError("--log-samples and --plot write files: give --output-path DIR")
    tasks = get_tasks(args.tasks)
    if args.output_path is not None:
        _check_writable(args.output_path)
    start = time.perf_counter()
    margs = dict(args.model_args or {})
    load_kw = {k: margs[k] for k in ("max_context", "batch_tokens", "max_batch") if k in margs}
    lm = ProbeLM.load(args.model, device=args.device, dtype=margs.get("dtype"), revision=margs.get("revision"),
                      use_chat_template=args.chat_template, **load_kw)
    if args.lengths and lm.context_limit is not None and max(args.lengths) > lm.context_limit:
        raise ValueError(f"--lengths {max(args.lengths)} exceeds the {lm.context_limit} tokens {args.model} can read "
                         f"({lm.limit_source}); use shorter lengths")
    report = evaluate(lm, tasks, quick=args.quick, lengths=args.lengths, limit=args.limit, seed=args.seed,
                      policies=args.kv_policy, threshold=args.threshold, model_args=margs, overrides=args.set)
    print(report.table())
    took = time.perf_counter() - start
    line = f"\n{len(report.samples)} samples in {took:.0f} s ({report.results['cpu_seconds']:.0f} s CPU probing)"
    if args.output_path is not None:
        try:
            written = report.write(args.output_path, log_samples=args.log_samples)
            if args.plot:
                png = written[0].parent / f"plot_{report.results['date'].replace(':', '-')}.png"
                report.plot(png)
                written.append(png)
        except OSError as err:
            raise ValueError(f"cannot write to --output-path {str(args.output_path)!r}: {err.strerror or err}") from None
        line += "; wrote " + ", ".join(str(p) for p in written)
    print(line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("probe", help="the working-memory benchmark: list tasks (ls) or run them (run)",
                       description="The working-memory benchmark of Chapter 14 (tasks after RULER, Liu et al. and "
                                   "Gong et al.; command line after lm-evaluation-harness).")
    cmds = p.add_subparsers(dest="probe_command", metavar="{ls,run}", parser_class=type(p))
    ls = cmds.add_parser("ls", help="list the tasks and groups", description="List the tasks and task groups.")
    ls.set_defaults(func=run_ls)
    r = cmds.add_parser("run", help="run tasks on a model",
                        description="Run probe tasks on a model: print a table of scores with 95%% intervals and "
                                    "effective lengths; write JSON, per-sample JSONL and plots with --output-path.")
    r.add_argument("--tasks", default="all", help="task or group names, comma-separated (wmlib probe ls); default all")
    r.add_argument("--model", default="smollm2-135m", help="a packaged model name, a hub id or a local folder")
    r.add_argument("--model-args", type=model_args, default={}, metavar="K=V,...",
                   help=f"model settings: {', '.join(_MODEL_ARGS)} (e.g. dtype=bfloat16,batch_tokens=4096)")
    r.add_argument("--chat-template", choices=["auto", "on", "off"], default="auto",
                   help="wrap prompts in the tokenizer's chat template (auto: when it has one)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    r.add_argument("--lengths", type=lengths, default=None, metavar="L1,L2,...",
                   help="context lengths in tokens for the length tasks (default: the tasks' own)")
    r.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="documents per cell (per length and depth; n-back: blocks per n)")
    r.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the generated items (default 0)")
    r.add_argument("--kv-policy", type=kv_policies, default=["full"], metavar="P1,P2,...",
                   help="KV caches to compare: full, window:N, sinks:S+R, h2o:N or h2o:H+R (default full)")
    r.add_argument("--threshold", type=threshold, default=0.856,
                   help="score a length must exceed to count as effective (default 0.856, RULER's)")
    r.add_argument("--set", type=task_settings, default=None, metavar="JSON",
                   help="settings per task, e.g. '{\"vt\": {\"hops\": 2}}'")
    r.add_argument("--quick", action="store_true", help="the tasks' small settings (minutes on a laptop CPU)")
    r.add_argument("--output-path", type=output_path, default=None, metavar="DIR",
                   help="write DIR/<model>/results_<date>.json (or this .json file)")
    r.add_argument("--log-samples", action="store_true", help="also write every sample, one JSONL file per task")
    r.add_argument("--plot", action="store_true", help="also draw the heatmaps and curves (PNG)")
    r.set_defaults(func=run)
    p.set_defaults(func=lambda args: p.print_help() or 0)
