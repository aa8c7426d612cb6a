"""Benchmarks of the training pipeline on synthetic data the size of the real prepared data.

Each phase (generate, prepare, split, fit and evaluate per model) runs in its own subprocess, so
its wall time and peak resident memory (`ru_maxrss` from `os.wait4`) are measured alone. Phases
pass their outputs through pickles in a work folder.

    python -m bookrecs.bench --out docs/benchmarks.md            # full size (about 35M raw rows)
    python -m bookrecs.bench --users 20000 --books 5000 --out -  # quick run, printed only
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH_MODELS = ("random", "popular", "itemknn", "als", "content", "lightfm")
GOALS = {
    "prepare": "35M raw rows within 5 min and 8 GB",
    "evaluate": "190k users within 1 min",
    "fit lightfm": "full fit within 30 min",
}


@dataclass
class PhaseResult:
    """Wall time, peak memory and the phase's own numbers."""

    phase: str
    seconds: float
    peak_mib: float
    details: dict[str, Any]


def _config(args: argparse.Namespace):
    from bookrecs.config import TrainConfig

    demo: dict[str, Any] = {"size": "full" if args.users is None else "small"}
    if args.users is not None:
        demo.update(n_users=args.users, n_books=args.books)
    return TrainConfig.from_dict(
        {"dataset": "demo", "seed": args.seed, "demo": demo, "show_progress": False}
    )


def run_phase(phase: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in this process and return its details (called in the child)."""
    from bookrecs.data.demo import write_demo
    from bookrecs.data.load import load_dataset
    from bookrecs.data.prepare import prepare

    config = _config(args)
    work = Path(args.work)
    if phase == "generate":
        dest = write_demo(
            Path(args.data_root) / _demo_name(config), config.demo, config.seed, show_progress=False
        )
        return {"files": {p.name: p.stat().st_size for p in dest.glob("*.gz")}}
    if phase == "prepare":
        dataset = load_dataset(config)
        prepared = prepare(dataset, config.protocol, show_progress=False)
        _dump(work / "prepared.pkl", prepared)
        return {"raw_rows": dataset.interactions.height, "steps": prepared.steps}
    if phase == "split":
        from bookrecs.interactions import TrainData
        from bookrecs.split import make_split

        split = make_split(_load(work / "prepared.pkl"), config.protocol)
        data = TrainData.from_split(split)
        _dump(work / "split.pkl", (split.test, data))
        return {
            "train_pairs": int(data.user_items.nnz),
            "users": data.n_users,
            "items": data.n_items,
            "test_users": int(split.test["user_id"].n_unique()),
        }
    kind, name = phase.split(" ", 1)
    test, data = _load(work / "split.pkl")
    if kind == "fit":
        from bookrecs.models import build_model

        params = (
            {"epochs": args.lightfm_epochs} if name == "lightfm" and args.lightfm_epochs else {}
        )
        model = build_model(name, config.seed, params, show_progress=False)
        model.fit(data)
        model.save(work / "models" / name)
        epochs = getattr(model, "epoch_seconds_", None)
        return {"epoch_seconds": [round(s, 1) for s in epochs]} if epochs else {}
    if kind == "evaluate":
        from bookrecs.evaluate import evaluate
        from bookrecs.models import Recommender

        model = Recommender.load(work / "models" / name)
        model.user_items_ = data.user_items
        metrics = evaluate(model, data, test, config.evaluation)
        return {
            key: value if key.startswith("n_") else round(float(value), 4)
            for key, value in metrics.items()
        }
    raise ValueError(f"unknown phase {phase!r}")


def _demo_name(config) -> str:
    return f"{config.demo.size}-seed{config.seed}"


def _dump(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)


def _load(path: Path) -> Any:
    with path.open("rb") as file:
        return pickle.load(file)


def measure(phase: str, argv: list[str]) -> PhaseResult:
    """Run `phase` in a child process and measure its wall time and peak memory."""
    result_file = Path(_arg(argv, "--work")) / f"{phase.replace(' ', '-')}.json"
    command = [sys.executable, "-m", "bookrecs.bench", "--phase", phase, *argv]
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        details = {"error": f"exit status {os.waitstatus_to_exitcode(status)}"}
    else:
        details = json.loads(result_file.read_text())
    return PhaseResult(phase, seconds, usage.ru_maxrss / 1024, details)


def _arg(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def machine_description() -> str:
    """Return CPU model, core count, memory and Python version of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kib / 1024**2:.0f} GiB RAM"
    except OSError:
        memory = "unknown RAM"
    return f"{cpu}, {os.cpu_count()} cores, {memory}, Python {platform.python_version()}"


def render(results: dict[str, dict[str, Any]], order: list[str]) -> str:
    """Render stored phase results as the Markdown section of docs/benchmarks.md."""
    commands: list[str] = []
    for phase in order:
        if phase in results and results[phase]["command"] not in commands:
            commands.append(results[phase]["command"])
    lines = ["## Training pipeline", ""]
    lines += [f"Command {i}: `{command}`  " for i, command in enumerate(commands, start=1)]
    lines += [
        f"Machine: {machine_description()}  ",
        f"Written: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Data: synthetic (demo generator).",
        "",
        "| phase | command | wall time (s) | peak memory (MiB) | goal | details |",
        "|---|---:|---:|---:|---|---|",
    ]
    for phase in order:
        if phase not in results:
            continue
        row = results[phase]
        goal = GOALS.get(phase) or GOALS.get(phase.split(" ")[0], "")
        number = commands.index(row["command"]) + 1
        lines.append(
            f"| {phase} | {number} | {row['seconds']:.1f} | {row['peak_mib']:.0f} | {goal} | "
            f"{summarise(row['details'])} |"
        )
    return "\n".join(lines) + "\n"


def summarise(details: dict[str, Any]) -> str:
    """Return the few numbers of a phase worth a table cell."""
    if "error" in details:
        return f"failed: {details['error']}"
    parts = []
    for key in ("raw_rows", "train_pairs", "users", "items", "test_users", "n_users"):
        if key in details:
            parts.append(f"{key} {details[key]:,}")
    if "steps" in details:
        parts.append(f"prepared rows {details['steps'][-1][1]:,}")
    for key in ("ndcg@10", "cold_ndcg@10"):
        if key in details:
            parts.append(f"{key} {details[key]:.4f}")
    if details.get("epoch_seconds"):
        epochs = details["epoch_seconds"]
        parts.append(f"{len(epochs)} epochs, {np.mean(epochs):.1f} s per epoch")
    if "files" in details:
        parts.append(f"{sum(details['files'].values()) / 2**20:,.0f} MiB of gzip files")
    return ", ".join(parts)


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the '## Training pipeline' section of `path`."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Training pipeline")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bookrecs.bench", description=__doc__)
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown file, or - to print")
    parser.add_argument("--users", type=int, default=None, help="Demo users (default: full size)")
    parser.add_argument("--books", type=int, default=None, help="Demo books (with --users)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", default=",".join(BENCH_MODELS))
    parser.add_argument("--work", default="data/bench/work", help="Folder for phase outputs")
    parser.add_argument("--data-root", default="data/demo", help="Where demo data is generated")
    parser.add_argument(
        "--only",
        help="Comma-separated phases to re-run (e.g. 'evaluate popular,fit als'); the other rows "
        "are kept from the last run with the same --work folder",
    )
    parser.add_argument(
        "--lightfm-epochs",
        type=int,
        default=None,
        help="Epochs of the lightfm fit (default: the model's); fewer epochs still give the "
        "time per epoch",
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.users is not None and args.books is None:
        parser.error("--users needs --books")

    if args.phase:
        details = run_phase(args.phase, args)
        result_file = Path(args.work) / f"{args.phase.replace(' ', '-')}.json"
        result_file.write_text(json.dumps(details, default=_json_default))
        return 0

    Path(args.work).mkdir(parents=True, exist_ok=True)
    child_argv = ["--seed", str(args.seed), "--work", args.work, "--data-root", args.data_root]
    if args.lightfm_epochs:
        child_argv += ["--lightfm-epochs", str(args.lightfm_epochs)]
    if args.users is not None:
        child_argv += ["--users", str(args.users), "--books", str(args.books)]
    phases = ["generate", "prepare", "split"]
    for name in args.models.split(","):
        phases += [f"fit {name}", f"evaluate {name}"]
    selected = [phase.strip() for phase in args.only.split(",")] if args.only else phases
    unknown = sorted(set(selected) - set(phases))
    if unknown:
        parser.error(f"unknown phases {unknown}: choose from {', '.join(phases)}")

    command = "python -m bookrecs.bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    store = Path(args.work) / "results.json"
    results = json.loads(store.read_text()) if args.only and store.exists() else {}
    for phase in selected:
        print(f"bench: {phase} ...", flush=True)
        result = measure(phase, child_argv)
        print(f"bench: {phase}: {result.seconds:.1f} s, {result.peak_mib:.0f} MiB")
        results[phase] = {**asdict(result), "command": command.strip()}
        store.write_text(json.dumps(results, indent=2, default=_json_default))
        if args.out != "-":  # written after every phase, so a long run keeps what it measured
            write_section(Path(args.out), render(results, phases))
        if "error" in result.details and phase in ("generate", "prepare", "split"):
            break

    if args.out == "-":
        print(render(results, phases))
    else:
        print(f"wrote {args.out}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
