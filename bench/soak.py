"""Soak: many episodes through one env server, with injected faults; prints what leaked.

Runs N episodes (default 1000) at concurrency C (default 32) through one verifiers env server in
its own process (prime-rl's path), real Terminus-2 in the local sandbox, a scripted policy on a
fake inference server. About 10% of the episodes get a fault, spread over: inference 500,
inference garbage, a verifier that crashes, a verifier that writes NaN (errored, as expected),
and an agent timeout (scored, as expected).

Prints: episodes completed, scored, errored as expected, unexpected outcomes; leaked processes,
sandbox folders and the env server's descriptors (all must be 0); the env server's RSS at start
(after a warm-up of 2 x concurrency episodes, which brings it to its steady state), after each
tenth of the episodes, and at the end; episodes per minute.

Usage: uv run python bench/soak.py [--episodes 1000] [--concurrency 32] [--fault-rate 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import verifiers.v1 as vf  # noqa: E402
from common import markdown_table  # noqa: E402

from harbor_env.testing.configs import env_config, task_rows  # noqa: E402
from harbor_env.testing.env_server import EnvServer, env_server  # noqa: E402
from harbor_env.testing.episodes import train_client  # noqa: E402
from harbor_env.testing.inference import FakeInferenceServer  # noqa: E402
from harbor_env.testing.policies import ScriptedPolicy, script_then_finish, terminus_reply  # noqa: E402
from harbor_env.testing.processes import processes_mentioning, rss_mb  # noqa: E402
from harbor_env.testing.tasks import write_task  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402

FAULT_TASKS = {
    # name: (test.sh, agent timeout, expected outcome)
    "ok": ("#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n", 60, "scored"),
    "verifier-crash": ("#!/bin/bash\nexit 3\n", 60, "errored"),
    "verifier-nan": ("#!/bin/bash\necho nan > /logs/verifier/reward.txt\n", 60, "errored"),
    "agent-timeout": ("#!/bin/bash\necho 0 > /logs/verifier/reward.txt\n", 2, "scored"),
}


FAULTS = ["inference-500", "inference-garbage", "verifier-crash", "verifier-nan", "agent-timeout"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    plan = [rng.choice(FAULTS) if rng.random() < args.fault_rate else "ok" for _ in range(args.episodes)]
    with tempfile.TemporaryDirectory(prefix="harbor-env-soak-") as tmp:
        work = Path(tmp)
        for name, (test_sh, agent_timeout, _) in FAULT_TASKS.items():
            write_task(
                work / "tasks",
                name,
                instruction=f"Soak task {name}.",
                agent_timeout=agent_timeout,
                verifier_timeout=30,
                test_sh=test_sh,
            )
        tokenizer = build_test_tokenizer(work / "tokenizer")
        config = env_config(work, tasks=work / "tasks")
        policy = ScriptedPolicy(
            {"Soak task agent-timeout": [terminus_reply("sleep 30\n", duration=10)]},
            default=script_then_finish("echo working\n"),
        )
        fakes = {
            "healthy": FakeInferenceServer(tokenizer, policy).start(),
            "inference-500": FakeInferenceServer(tokenizer, policy, fault="http_500").start(),
            "inference-garbage": FakeInferenceServer(tokenizer, policy, fault="garbage").start(),
        }
        try:
            async with env_server(config) as server:
                figures = await soak(server, plan, args.concurrency, task_rows(config), fakes, tokenizer)
            figures.insert(
                -1,
                (
                    "leaked processes / sandbox folders",
                    f"{len(processes_mentioning(str(work / 'sandboxes')))} / "
                    f"{len(list((work / 'sandboxes').iterdir())) if (work / 'sandboxes').exists() else 0}",
                ),
            )
        finally:
            for fake in fakes.values():
                fake.stop()
    print(f"soak: {args.episodes} episodes, concurrency {args.concurrency}, fault rate {args.fault_rate:.0%}")
    print(markdown_table(["figure", "value"], [list(f) for f in figures]))


async def soak(
    server: EnvServer, plan: list[str], concurrency: int, rows: dict, fakes: dict, tokenizer: Path
) -> list[tuple[str, str]]:
    """Run `plan` (a fault kind or "ok" per episode) through the env server; its figures."""
    limit = asyncio.Semaphore(concurrency)
    sampling = vf.SamplingConfig(temperature=1.0, max_tokens=1024)
    outcomes = {"scored": 0, "errored as expected": 0, "unexpected": 0}
    checkpoints: list[float] = []  # RSS after each tenth of the plan

    async def one(kind: str) -> None:
        task = kind if kind in rows else "ok"
        expected = "errored" if kind.startswith("inference") else FAULT_TASKS[task][2]
        model = train_client(fakes.get(kind, fakes["healthy"]), tokenizer)
        async with limit:
            episode = await server.client.run(model, "test-model", sampling, rows[task])
        ok = bool(episode.traces) and all(t.ok for t in episode.traces)
        if ok == (expected == "scored"):
            outcomes["scored" if ok else "errored as expected"] += 1
        else:
            outcomes["unexpected"] += 1
        if sum(outcomes.values()) % max(1, len(plan) // 10) == 0:
            checkpoints.append(rss_mb(server.pid))

    # Warm up to the steady state before the first RSS reading: imports, caches, and the heap
    # of `concurrency` episodes in flight at once (a high-water mark, not a leak).
    await asyncio.gather(*(one("ok") for _ in range(2 * concurrency)))
    outcomes.update(dict.fromkeys(outcomes, 0))
    checkpoints.clear()
    descriptors_start, rss_start = len(os.listdir(f"/proc/{server.pid}/fd")), rss_mb(server.pid)
    started = time.monotonic()
    await asyncio.gather(*(one(kind) for kind in plan))
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)
    descriptors_end, rss_end = len(os.listdir(f"/proc/{server.pid}/fd")), rss_mb(server.pid)
    return [
        ("completed", str(sum(outcomes.values()))),
        ("scored", str(outcomes["scored"])),
        ("errored as expected", str(outcomes["errored as expected"])),
        ("unexpected outcomes", str(outcomes["unexpected"])),
        ("env-server descriptors start → end", f"{descriptors_start} → {descriptors_end}"),
        (
            "env-server RSS start → end (MB)",
            f"{rss_start:.0f} → {rss_end:.0f} ({(rss_end / rss_start - 1) * 100:+.1f}%)",
        ),
        ("env-server RSS after each tenth (MB)", " → ".join(f"{r:.0f}" for r in checkpoints)),
        ("episodes per minute", f"{sum(outcomes.values()) / elapsed * 60:.1f}"),
    ]


if __name__ == "__main__":
    asyncio.run(main())
