"""Soak: many episodes through one env server, with injected faults; prints what leaked.

Runs N episodes (default 1000) at concurrency C (default 32) through one verifiers env server in
its own process (prime-rl's path), real Terminus-2 in the local sandbox, a scripted policy on a
fake inference server. About 10% of the episodes get a fault, spread over: inference 500,
inference garbage, a verifier that crashes, a verifier that writes NaN (errored, as expected),
and an agent timeout (scored, as expected).

Prints: episodes completed, scored, errored as expected, unexpected outcomes; leaked processes,
sandbox folders and the env server's descriptors (all must be 0); the env server's RSS at start
and end; episodes per minute.

Usage: uv run python bench/soak.py [--episodes 1000] [--concurrency 32] [--fault-rate 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import verifiers.v1 as vf  # noqa: E402
from verifiers.v1.serve import EnvClient, env_config_data, serve_env  # noqa: E402
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config  # noqa: E402

from harbor_env.testing.inference import FakeInferenceServer  # noqa: E402
from harbor_env.testing.policies import ScriptedPolicy, script_then_finish, terminus_reply  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASK_TOML = 'version = "1.0"\n[verifier]\ntimeout_sec = 30.0\n[agent]\ntimeout_sec = {agent}\n'
FAULT_TASKS = {
    # name: (test.sh, agent timeout, expected outcome)
    "ok": ("#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n", 60, "scored"),
    "verifier-crash": ("#!/bin/bash\nexit 3\n", 60, "errored"),
    "verifier-nan": ("#!/bin/bash\necho nan > /logs/verifier/reward.txt\n", 60, "errored"),
    "agent-timeout": ("#!/bin/bash\necho 0 > /logs/verifier/reward.txt\n", 2, "scored"),
}


def write_tasks(root: Path) -> None:
    for name, (test_sh, agent_timeout, _) in FAULT_TASKS.items():
        task = root / name
        for sub in ("environment", "tests", "solution"):
            (task / sub).mkdir(parents=True, exist_ok=True)
        (task / "task.toml").write_text(TASK_TOML.format(agent=float(agent_timeout)))
        (task / "instruction.md").write_text(f"Soak task {name}.\n")
        (task / "environment" / "Dockerfile").write_text("FROM debian:bookworm-slim\nWORKDIR /app\n")
        (task / "tests" / "test.sh").write_text(test_sh)
        (task / "tests" / "test.sh").chmod(0o755)
        (task / "solution" / "solve.sh").write_text("#!/bin/bash\ntrue\n")


def sandbox_processes(sandboxes: Path) -> set[int]:
    found = set()
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if pid.isdigit() and str(sandboxes) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.add(int(pid))
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="harbor-env-soak-") as tmp:
        work = Path(tmp)
        write_tasks(work / "tasks")
        tokenizer = build_test_tokenizer(work / "tokenizer")
        config = resolve_env_config(
            {
                "taskset": {"id": "harbor-env", "path": str(work / "tasks")},
                "agent": {"harness": {"id": "harbor-env", "trials_dir": str(work / "trials"),
                                      "environment": {"type": "local", "kwargs": {"sandbox_dir": str(work / "sandboxes")}}}},
            }
        )  # fmt: skip
        rows = {t.data.name: t.data.model_dump(mode="json") for t in load_taskset(config.taskset)}
        context = multiprocessing.get_context("spawn")
        addresses = context.Queue()
        server_process = context.Process(
            target=serve_env,
            kwargs={"max_workers": 1, "address": "tcp://127.0.0.1:0", "address_queue": addresses,
                    "config_data": env_config_data(config)},  # fmt: skip
            daemon=True,
        )
        server_process.start()
        client = EnvClient(await asyncio.to_thread(addresses.get, True, 300))
        await client.wait_for_server_startup(timeout=300)
        policy = ScriptedPolicy(
            {"Soak task agent-timeout": [terminus_reply("sleep 30\n", duration=10)]},
            default=script_then_finish("echo working\n"),
        )
        healthy = FakeInferenceServer(tokenizer, policy).start()
        broken = {f: FakeInferenceServer(tokenizer, policy, fault=f).start() for f in ("http_500", "garbage")}

        def client_for(server: FakeInferenceServer) -> vf.TrainClientConfig:
            return vf.TrainClientConfig(base_url=server.base_url, api_key_var="NONE", renderer_model_name=str(tokenizer))

        faults = ["inference-500", "inference-garbage", "verifier-crash", "verifier-nan", "agent-timeout"]
        plan = [rng.choice(faults) if rng.random() < args.fault_rate else "ok" for _ in range(args.episodes)]
        sampling = vf.SamplingConfig(temperature=1.0, max_tokens=1024)
        limit = asyncio.Semaphore(args.concurrency)
        outcomes: dict[str, int] = {"scored": 0, "errored as expected": 0, "unexpected": 0}

        async def one(kind: str) -> None:
            nonlocal outcomes
            server = {"inference-500": broken["http_500"], "inference-garbage": broken["garbage"]}.get(kind, healthy)
            task = kind if kind in rows else "ok"
            expected = "errored" if kind.startswith("inference") else FAULT_TASKS[task][2]
            async with limit:
                episode = await client.run(client_for(server), "test-model", sampling, rows[task])
            ok = all(t.ok for t in episode.traces) and bool(episode.traces)
            if ok and expected == "scored":
                outcomes["scored"] += 1
            elif not ok and expected == "errored":
                outcomes["errored as expected"] += 1
            else:
                outcomes["unexpected"] += 1

        # Warm up (imports, caches) before the first RSS reading.
        await asyncio.gather(*(one("ok") for _ in range(min(args.concurrency, 8))))
        outcomes = dict.fromkeys(outcomes, 0)
        fds_start = len(os.listdir(f"/proc/{server_process.pid}/fd"))
        rss_start = rss_mb(server_process.pid)
        started = time.monotonic()
        await asyncio.gather(*(one(kind) for kind in plan))
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)
        fds_end = len(os.listdir(f"/proc/{server_process.pid}/fd"))
        rss_end = rss_mb(server_process.pid)
        leaked_processes = len(sandbox_processes(work / "sandboxes"))
        leaked_folders = len(list((work / "sandboxes").iterdir())) if (work / "sandboxes").exists() else 0
        await client.close()
        server_process.terminate()
        server_process.join(30)
        for server in (healthy, *broken.values()):
            server.stop()
    completed = sum(outcomes.values())
    print(f"soak: {args.episodes} episodes, concurrency {args.concurrency}, fault rate {args.fault_rate:.0%}")
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| completed | {completed} |")
    print(f"| scored | {outcomes['scored']} |")
    print(f"| errored as expected | {outcomes['errored as expected']} |")
    print(f"| unexpected outcomes | {outcomes['unexpected']} |")
    print(f"| leaked processes / sandbox folders | {leaked_processes} / {leaked_folders} |")
    print(f"| env-server descriptors start → end | {fds_start} → {fds_end} |")
    print(f"| env-server RSS start → end (MB) | {rss_start:.0f} → {rss_end:.0f} ({(rss_end / rss_start - 1) * 100:+.1f}%) |")
    print(f"| episodes per minute | {completed / elapsed * 60:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
