"""The env server's CPU per episode at concurrency 32: now against the code of the day issue 16
was filed, and against the nsenter command path put back. Target (issue 16): at least 20% lower
than that day, with the reward-integrity work (verifier isolation, the hardened sandbox) in.

1. Then and now: main as it was when the issue was filed (THEN, checked out as a git worktree)
   and this checkout, each serving through its own env server (bench/tree_worker.py in its own
   process, with that checkout's harbor_env; the installed verifiers, Harbor and renderers are
   the same for both), batches alternating (ABBA). This is the target's comparison: everything
   that changed since, the security work included, is in it.
2. nsenter: this checkout against itself with the command path before issue 16 (nsenter +
   setpriv per command) put back (bench/scaling.py --compare nsenter): the part of the change
   that is the command path alone.

Usage: uv run --group bench python bench/baseline.py [--quick] [--out bench/results]
(needs the git history: a clone that has commit THEN)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import common
import scaling
from common import markdown_table

THEN = "500a748"  # main when issue 16 was filed (2026-11-26): the "today" of its target
VARIANT = "nsenter"
TARGET_REDUCTION = 0.20
WORKER = Path(__file__).with_name("tree_worker.py")
SIDES = ("now", "then")


class TreeWorker:
    """bench/tree_worker.py serving one checkout; `batch` runs one batch there."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path):
        self.process = process
        self.log = log

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await self.process.stdout.readline()
        if not raw:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"bench/tree_worker.py exited ({await self.process.wait()}); its log ends:\n{tail}")
        return json.loads(raw)

    async def batch(self, concurrency: int, repeats: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{concurrency} {repeats}\n".encode())
        await self.process.stdin.drain()
        return await self.line()


@contextlib.asynccontextmanager
async def tree_worker(tree: Path, log: Path) -> AsyncIterator[TreeWorker]:
    """The worker for `tree`, warmed up: `-P` and PYTHONPATH make that tree's harbor_env and
    bench helpers the ones imported (the installed harbor_env points at this checkout)."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}:{tree / 'bench'}"}
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", str(WORKER), cwd=tree, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    worker = TreeWorker(process, log)
    try:
        ready = await worker.line()
        if not Path(ready["harbor_env"]).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"the worker for {tree} imported harbor_env from {ready['harbor_env']}")
        yield worker
    finally:
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.contextmanager
def checkout(revision: str, into: Path):
    """`revision` of this repository as a detached git worktree at `into`, removed afterwards."""
    git = ["git", "-C", str(common.ROOT)]
    subprocess.run([*git, "worktree", "prune"], check=False)  # what an interrupted run left
    added = subprocess.run(
        [*git, "worktree", "add", "--detach", str(into), revision],
        capture_output=True, text=True,
    )  # fmt: skip
    if added.returncode != 0:
        raise SystemExit(
            f"bench/baseline.py: cannot check out {revision} (the commit issue 16 measured against): "
            f"{added.stderr.strip()}. Run it in a clone with the full history (git fetch --unshallow)."
        )
    try:
        yield into
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(into)], check=False)


async def then_and_now(out_dir: Path, quick: bool) -> str:
    repeats, rounds = (3, 2) if quick else (6, 4)
    totals = {side: {"episodes": 0, "seconds": 0.0, "cpu": 0.0} for side in SIDES}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="harbor-env-then-") as tmp, checkout(THEN, Path(tmp) / "then") as then:
        async with (
            tree_worker(common.ROOT, Path(tmp) / "now.log") as now_worker,
            tree_worker(then, Path(tmp) / "then.log") as then_worker,
        ):
            workers = {"now": now_worker, "then": then_worker}
            for round_ in range(rounds):
                for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
                    batch = await workers[side].batch(scaling.SATURATED, repeats)
                    notes += [f"{side}: {why}" for why in batch["failures"]]
                    totals[side]["episodes"] += batch["episodes"]
                    totals[side]["seconds"] += batch["seconds"]
                    totals[side]["cpu"] += batch["env_server_cpu_s"]
    per_episode = {side: totals[side]["cpu"] / totals[side]["episodes"] * 1000 for side in SIDES}
    rate = {side: totals[side]["episodes"] / totals[side]["seconds"] * 60 for side in SIDES}
    figures = {"then": THEN, "per_episode_ms": per_episode, "per_minute": rate, "totals": totals, "notes": notes}
    (out_dir / "compare-then.json").write_text(json.dumps(figures, indent=1))
    table = markdown_table(
        ["checkout", "episodes", "eps/min", "env-server CPU ms/episode"],
        [
            [label, totals[side]["episodes"], f"{rate[side]:.1f}", f"{per_episode[side]:.0f}"]
            for side, label in (("now", "this checkout"), ("then", f"`{THEN}` (main when issue 16 was filed)"))
        ],
    )
    reduction = 1 - per_episode["now"] / per_episode["then"]
    return "\n".join(
        [
            f"### Then and now: the env server at concurrency {scaling.SATURATED}",
            "",
            f"`uv run --group bench python bench/baseline.py`: each checkout's own env server (bench/tree_worker.py), "
            f"the same sample tasks, packages and scripted model, batches alternating ({rounds} rounds of "
            f"{repeats * 7} episodes). CPU: the env server's process (all threads, not the sandboxes').",
            "",
            table,
            "",
            f"The env server uses {reduction:.0%} less CPU per episode than on the day issue 16 was filed"
            + (f"; {len(notes)} failures: {notes[0]}" if notes else "; every episode scored 1.0."),
        ]
    )


async def section(out_dir: pathlib.Path, quick: bool = False) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    then = await then_and_now(out_dir, quick)
    return then + "\n\n" + await scaling.compare(out_dir, quick, VARIANT)


def verdict(out_dir: pathlib.Path) -> dict:
    """The target's verdict from what `section` left in `out_dir`: against the code of the day."""
    figures = json.loads((out_dir / "compare-then.json").read_text())
    now, before = (figures["per_episode_ms"][side] for side in SIDES)
    reduction = 1 - now / before
    why = f"{now:.0f} ms against {before:.0f} ms at {figures['then']}, {reduction:.0%} lower"
    nsenter = out_dir / f"compare-{VARIANT}.json"
    if nsenter.is_file():
        against = json.loads(nsenter.read_text())["per_episode_ms"]
        current, variant = (against[side]["env server"] for side in ("current", VARIANT))
        why += f"; the command path alone: {current:.0f} against {variant:.0f} ms with {VARIANT}"
    if figures["notes"]:
        why += f"; {len(figures['notes'])} failures: {figures['notes'][0]}"
    return {
        "target": f"env-server CPU per episode at concurrency {scaling.SATURATED} >= {TARGET_REDUCTION:.0%} lower",
        "met": reduction >= TARGET_REDUCTION and not figures["notes"],
        "why": why,
    }


def main() -> None:
    common.run_section_alone(__doc__, "fewer, shorter batches; no verdict", section)


if __name__ == "__main__":
    main()
