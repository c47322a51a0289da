"""Env-server memory per concurrent episode: RSS idle, at the peak of 32 concurrent episodes, after.

One verifiers env server in its own process (prime-rl's path), real Terminus-2 in the local
sandbox, a scripted policy on a fake inference server. After a warm-up, 32 episodes run at
once; the policy keeps every episode waiting (`sleep 1` commands) until all 32 have made
their first model call and then for a few seconds more, so they overlap fully whatever the
machine's speed. The env server's RSS is sampled every 0.2 s. The sandboxes' own processes
are separate processes (children of the env server), reported apart as their summed PSS.

Usage: uv run --group bench python bench/memory.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults  # noqa: E402

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402

from harbor_env.testing.configs import SAMPLING, env_config, task_rows  # noqa: E402
from harbor_env.testing.env_server import EnvServer, env_server  # noqa: E402
from harbor_env.testing.episodes import train_client  # noqa: E402
from harbor_env.testing.inference import FakeInferenceServer, PolicyInput  # noqa: E402
from harbor_env.testing.policies import terminus_reply  # noqa: E402
from harbor_env.testing.processes import descendant_pids, descendant_processes, processes_mentioning, rss_mb  # noqa: E402
from harbor_env.testing.tasks import write_task  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402

CONCURRENCY = 32
TARGET_MB = 30.0
SAMPLE_EVERY_S = 0.2
GIVE_UP_S = 180.0  # release the episodes even if some never start, rather than wait forever


@dataclass
class HoldTogether:
    """Keeps each episode busy until `episodes` episodes have called the model and `hold_s`
    more seconds have passed, then finishes them all (task_complete, and again to confirm).
    Remembers when each episode first called and was released, to check the overlap."""

    episodes: int
    hold_s: float
    started: dict[str, float] = field(default_factory=dict)
    released: dict[str, float] = field(default_factory=dict)

    def __call__(self, request: PolicyInput) -> str:
        now = time.monotonic()
        self.started.setdefault(request.session_id, now)
        everyone_in = len(self.started) >= self.episodes and now - max(self.started.values()) >= self.hold_s
        if everyone_in or now - min(self.started.values()) > GIVE_UP_S:
            self.released.setdefault(request.session_id, now)
            return terminus_reply(task_complete=True)
        return terminus_reply("sleep 1\n", duration=1.0)

    def most_in_flight(self) -> int:
        """The most episodes that were between their first model call and their release at once."""
        events = sorted([(t, 1) for t in self.started.values()] + [(t, -1) for t in self.released.values()])
        in_flight = most = 0
        for _, step in events:
            in_flight += step
            most = max(most, in_flight)
        return most


def pss_mb(pid: int) -> float:
    """Proportional set size (shared pages split among their users), falling back to RSS."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    with contextlib.suppress(OSError):
        return rss_mb(pid)
    return 0.0


async def run_together(server: EnvServer, model: FakeInferenceServer, tokenizer: Path, row: dict, count: int) -> list:
    client = train_client(model, tokenizer)
    return await asyncio.gather(*(server.client.run(client, "test-model", SAMPLING, row) for _ in range(count)))


async def measure(quick: bool) -> dict:
    warmup, hold_s = (4, 3.0) if quick else (8, 10.0)
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-memory-") as tmp:
        work = Path(tmp)
        write_task(
            work / "tasks",
            "hold",
            instruction="[memory benchmark] Wait for the others, then finish.",
            agent_timeout=600,
            verifier_timeout=30,
        )
        tokenizer = build_test_tokenizer(work / "tokenizer")
        config = env_config(work, tasks=work / "tasks")
        row = task_rows(config)["hold"]
        async with env_server(config) as server:
            with FakeInferenceServer(tokenizer, HoldTogether(warmup, hold_s=0.5)) as model:
                await run_together(server, model, tokenizer, row, warmup)
            await asyncio.sleep(1.0)
            idle = rss_mb(server.pid)

            policy = HoldTogether(CONCURRENCY, hold_s)
            samples: list[tuple[float, float, int, float]] = []  # (s, env-server RSS, sandbox processes, their PSS)
            started = time.monotonic()

            async def sample() -> None:
                while True:
                    below = await asyncio.to_thread(descendant_pids, server.pid)
                    pss = sum(pss_mb(p) for p in below)
                    samples.append((time.monotonic() - started, rss_mb(server.pid), len(below), pss))
                    await asyncio.sleep(SAMPLE_EVERY_S)

            sampler = asyncio.create_task(sample())
            try:
                with FakeInferenceServer(tokenizer, policy) as model:
                    episodes = await run_together(server, model, tokenizer, row, CONCURRENCY)
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            elapsed = time.monotonic() - started
            await asyncio.sleep(2.0)
            after = rss_mb(server.pid)
            # Not the command server itself: it lives as long as the env server (its agents count).
            left_over = {pid for pid, _ in descendant_processes(server.pid)}
        leaked = processes_mentioning(str(work / "sandboxes"))
    failed = [e for e in episodes if not (e.traces and all(t.ok for t in e.traces))]
    peak = max(samples, key=lambda s: s[1])
    return {
        "concurrency": CONCURRENCY,
        "warmup_episodes": warmup,
        "hold_s": hold_s,
        "most_in_flight": policy.most_in_flight(),
        "failed_episodes": len(failed),
        "seconds": elapsed,
        "idle_rss_mb": idle,
        "peak_rss_mb": peak[1],
        "after_rss_mb": after,
        "per_episode_mb": (peak[1] - idle) / CONCURRENCY,
        "peak_sandbox_processes": max(s[2] for s in samples),
        "peak_sandbox_pss_mb": max(s[3] for s in samples),
        "leftover_processes": len(left_over | leaked),
        "samples": samples,
    }


async def section(out_dir: Path, quick: bool = False) -> str:
    m = await measure(quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory.json").write_text(json.dumps(m, indent=2))
    rows = [
        ["episodes in flight at once (of 32)", m["most_in_flight"]],
        ["failed episodes", m["failed_episodes"]],
        [f"env-server RSS idle, after {m['warmup_episodes']} warm-up episodes", f"{m['idle_rss_mb']:.0f} MB"],
        ["env-server RSS peak, 32 concurrent episodes", f"{m['peak_rss_mb']:.0f} MB"],
        ["**per concurrent episode** (peak − idle) / 32", f"**{m['per_episode_mb']:.1f} MB**"],
        ["env-server RSS after the episodes finished", f"{m['after_rss_mb']:.0f} MB"],
        [
            "sandbox processes at peak (separate processes, not in the RSS above)",
            f"{m['peak_sandbox_processes']} processes, {m['peak_sandbox_pss_mb']:.0f} MB PSS",
        ],
        ["processes left after the run", m["leftover_processes"]],
    ]
    verdict = "meets" if m["per_episode_mb"] <= TARGET_MB else "misses"
    retained = m["after_rss_mb"] - m["idle_rss_mb"]
    command = "uv run --group bench python bench/memory.py" + (" --quick" if quick else "")
    return "\n".join(
        [
            "### Env-server memory per concurrent episode",
            "",
            f"`{command}` (one env server, {CONCURRENCY} episodes held together for {m['hold_s']:.0f} s after the last"
            f" one started, RSS sampled every {SAMPLE_EVERY_S} s; {m['seconds']:.0f} s in all)",
            "",
            common.markdown_table(["figure", "value"], rows),
            "",
            f"Each concurrent episode costs the env server {m['per_episode_mb']:.1f} MB at the peak ({verdict} the"
            f" ≤ {TARGET_MB:.0f} MB target); {retained:+.0f} MB of it stays after the episodes end. The sandboxes'"
            " processes (bubblewrap init, tmux, shells) live outside the env server and are counted apart.",
        ]
    )


def main() -> None:
    common.run_section_alone(__doc__, "shorter warm-up and hold (still 32 episodes)", section)


if __name__ == "__main__":
    main()
