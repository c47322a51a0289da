"""Local sandbox latency: start -> first exec -> stop, over N runs (default 50).

Usage: uv run python bench/sandbox_latency.py [--runs 50] [--task datasets/harbor_tasks/<name>]

Prints the median and p90 of each phase and of the whole cycle, in milliseconds. The
measurement lives in bench/lifecycle.py (which also measures Docker when a daemon is reachable).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from harbor.models.task.task import Task
from lifecycle import DEFAULT_TASK, PHASES, cycles, summarize


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--task", type=Path, default=DEFAULT_TASK)
    args = parser.parse_args()
    measured = await cycles(Task(args.task), args.runs)
    print(f"local sandbox lifecycle, {args.runs} runs, task {args.task.name}")
    print("| phase | median ms | p90 ms |")
    print("| --- | --- | --- |")
    for phase in PHASES:
        print(summarize(phase, [c[phase] for c in measured]))


if __name__ == "__main__":
    asyncio.run(main())
