"""Run every benchmark and write one markdown report.

Usage:
    uv run --group bench python bench/run.py [--quick] [--only NAME ...] [--out bench/results]

Sections, in this order (NAME = module in bench/):
    overhead   what harbor-env adds per episode and per model call
    tokens     token cost per episode: merged branches against step-wise samples
    episode_length  env-server CPU per turn at 5-80 turns, incremental renderer against full re-render
    lifecycle  sandbox start / first exec / stop: local sandbox, and Docker when a daemon is reachable
    commands   the sandbox's command path: CPU per command, an episode's commands, start -> exec -> stop
    baseline   the env server's CPU per episode against the code of the day issue 16 was filed
               and against the nsenter command path, in the same run
    memory     env-server RSS per concurrent episode at concurrency 32
    scaling    throughput as concurrency grows

--quick runs each section small (minutes, not tens of minutes); --only picks sections.
After the sections, a verdict per target (none with --quick: small runs prove nothing):
    a/c >= 0.95 at concurrency 8 and 32 (bench/overhead.py); the env server's CPU per episode at
    concurrency 32 at least 20% lower than on the day issue 16 was filed (bench/baseline.py); the
    sandbox targets (per-command child CPU and event-loop time, start -> exec -> stop against bare
    bwrap) from bench/commands.py.
Each section is printed as soon as it finishes, and OUT/results.md (a header with the date,
machine and git commit, then every section) is rewritten after each one, so a failure late
in the run keeps what came before. A section whose module is missing or that fails is
reported as such in the markdown; the exit status is then 1. Sections may also leave their
raw data (NAME.json) in OUT.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402

SECTIONS = ("overhead", "tokens", "episode_length", "lifecycle", "commands", "baseline", "memory", "scaling")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=common.ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def header(quick: bool, names: list[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "uv run --group bench python bench/run.py" + (" --quick" if quick else "")
    if list(names) != list(SECTIONS):
        command += " --only " + " ".join(names)
    return "\n".join(
        [
            "## harbor-env benchmarks",
            "",
            f"- date: {now}",
            f"- machine: {os.cpu_count()} cores, {cpu_model()}, {platform.system()} {platform.release()},"
            f" Python {platform.python_version()}",
            "- load average at start (1/5/15 min): "
            + " / ".join(f"{x:.1f}" for x in os.getloadavg())
            + " (other work shares this machine; absolute figures are noisy)",
            f"- commit: {git_commit()}",
            f"- command: `{command}`",
        ]
    )


async def run_section(name: str, out_dir: Path, quick: bool) -> tuple[str, bool]:
    """The section's markdown, and whether it ran; a missing module or a failure becomes a note."""
    try:
        module = importlib.import_module(name)  # lazily: sections may be absent while being written
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return f"### {name}\n\nNot run: bench/{name}.py is not there.", False
    try:
        return await module.section(out_dir, quick), True
    except Exception:
        return f"### {name}\n\nFailed:\n\n```\n{traceback.format_exc()}```", False


def sandbox_verdicts(out_dir: Path) -> list[dict]:
    """The sandbox targets, from what bench/commands.py left in `out_dir`."""
    from commands import targets

    figures = json.loads((out_dir / "commands.json").read_text())
    return [
        {"target": f"{what} {target}", "met": met, "why": measured} for what, measured, target, met in targets(figures)
    ]


async def verdicts(names: list[str], out_dir: Path, quick: bool) -> str:
    """The targets' verdicts from what the sections left in `out_dir`."""
    if quick:
        return "### Verdicts\n\nNone: `--quick` runs are too small to judge a target by."
    lines = ["### Verdicts", ""]
    found: list[dict] = []
    overhead = out_dir / "overhead.json"
    if "overhead" in names and overhead.is_file():
        result = json.loads(overhead.read_text())
        found += result.get("verdicts", [])
    if "baseline" in names and (out_dir / "compare-then.json").is_file():
        from baseline import verdict

        found.append(verdict(out_dir))
    if "commands" in names and (out_dir / "commands.json").is_file():
        found += sandbox_verdicts(out_dir)
    labels = {True: "met", False: "NOT MET", None: "not judged"}
    lines += [f"- {labels[v['met']]}: {v['target']} ({v['why']})" for v in found]
    return "\n".join(lines)


async def run(names: list[str], out_dir: Path, quick: bool) -> bool:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = [header(quick, names)]
    print(report[0], flush=True)
    all_ran = True
    for name in names:
        started = time.monotonic()
        text, ran = await run_section(name, out_dir, quick)
        all_ran &= ran
        report.append(text)
        print(f"\n{text}\n\n({name}: {time.monotonic() - started:.0f} s)", flush=True)
        (out_dir / "results.md").write_text("\n\n".join(report) + "\n")
    try:
        text = await verdicts(names, out_dir, quick)
    except Exception:
        text, all_ran = f"### Verdicts\n\nFailed:\n\n```\n{traceback.format_exc()}```", False
    report.append(text)
    print(f"\n{text}", flush=True)
    (out_dir / "results.md").write_text("\n\n".join(report) + "\n")
    print(f"\nwrote {out_dir / 'results.md'}")
    return all_ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs of every section")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="NAME", help=f"some of: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=common.ROOT / "bench" / "results")
    args = parser.parse_args()
    names = [n for n in SECTIONS if n in (args.only or SECTIONS)]
    sys.exit(0 if asyncio.run(run(names, args.out, args.quick)) else 1)


if __name__ == "__main__":
    main()
