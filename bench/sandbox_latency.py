"""Local sandbox latency: start -> first exec -> stop, over N runs (default 50).

Usage: uv run python bench/sandbox_latency.py [--runs 50] [--task datasets/harbor_tasks/<name>]

Prints the median and p90 of each phase and of the whole cycle, in milliseconds. Docker's
container start alone is about 500 ms on a typical host, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

# litellm (under Harbor) fetches a price list at import time unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from harbor.models.task.task import Task  # noqa: E402
from harbor.models.trial.paths import TrialPaths  # noqa: E402

from harbor_env.sandbox import LocalSandbox  # noqa: E402

DEFAULT_TASK = Path(__file__).resolve().parents[1] / "datasets" / "harbor_tasks" / "fix-python-bug"


async def one_cycle(task: Task, scratch: Path, index: int) -> dict[str, float]:
    trial_paths = TrialPaths(scratch / f"trial-{index}")
    trial_paths.mkdir()
    sandbox = LocalSandbox(
        environment_dir=task.paths.environment_dir,
        environment_name=task.name,
        session_id=f"bench-{index}",
        trial_paths=trial_paths,
        task_env_config=task.config.environment.model_copy(deep=True),
        sandbox_dir=str(scratch / "sandboxes"),
    )
    t0 = time.perf_counter()
    await sandbox.start(force_build=False)
    t1 = time.perf_counter()
    result = await sandbox.exec("true")
    t2 = time.perf_counter()
    await sandbox.stop(delete=True)
    t3 = time.perf_counter()
    assert result.return_code == 0, result
    return {"start": t1 - t0, "first exec": t2 - t1, "stop": t3 - t2, "total": t3 - t0}


def summarize(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"| {name} | {statistics.median(ms):.1f} | {p90:.1f} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--task", type=Path, default=DEFAULT_TASK)
    args = parser.parse_args()
    task = Task(args.task)
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-") as tmp:
        scratch = Path(tmp)
        await one_cycle(task, scratch, -1)  # warm-up: imports, page cache
        cycles = [await one_cycle(task, scratch, i) for i in range(args.runs)]
    print(f"local sandbox lifecycle, {args.runs} runs, task {args.task.name}")
    print("| phase | median ms | p90 ms |")
    print("| --- | --- | --- |")
    for phase in ("start", "first exec", "stop", "total"):
        print(summarize(phase, [c[phase] for c in cycles]))


if __name__ == "__main__":
    asyncio.run(main())
