"""Scaling of harbor-env on this machine: where throughput saturates, and what the time goes to.

Episodes per minute through verifiers' env server (prime-rl's path: HarborEnvironment,
Terminus-2, the local sandbox, a zero-latency scripted model in this process) at concurrency 1
to 64, with the CPU each part used; then a py-spy profile of the env server and of this process
at a saturated concurrency, to name the top costs.

`--compare VARIANT` instead runs the current configuration against a variant from
bench/agent_variants.py (an earlier cost put back: `litellm`, `nsenter`), interleaved, at the
saturated concurrency.

Usage: uv run --group bench python bench/scaling.py [--quick] [--out bench/results]
       uv run --group bench python bench/scaling.py --compare nsenter
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pathlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402
from agent_variants import VARIANTS, variant_harness  # noqa: E402
from common import TERMINUS_OPTIONS, markdown_table  # noqa: E402
from profiles import profile_summary, record_profiles  # noqa: E402

from harbor_env.testing.configs import env_config, task_rows  # noqa: E402
from harbor_env.testing.env_server import env_server  # noqa: E402
from harbor_env.testing.episodes import Batch, run_batch, solving_model, train_client  # noqa: E402
from harbor_env.testing.processes import (  # noqa: E402
    cpu_seconds,
    leak_notes,
    machine_busy_seconds,
    runner_cpu,
)

CONCURRENCIES = (1, 2, 4, 8, 16, 32, 64)
# Repeats of the 7 sample tasks per concurrency: at least two waves of episodes, 20 s or more.
REPEATS = {1: 2, 2: 2, 4: 3, 8: 4, 16: 6, 32: 10, 64: 19}
QUICK_REPEATS = {1: 1, 2: 1, 4: 1, 8: 2, 16: 3, 32: 5, 64: 10}
SATURATED = 32  # profiled and compared here: well past the knee on 2 cores
# ---------------------------------------------------------------------------------- CPU use


@dataclass
class CpuMeter:
    """Reads the CPU time of each part of a run, so a batch's use can be given in cores."""

    env_pid: int
    fake_model_tid: int
    everything: Callable[[], float]  # the env server and all it started (testing.processes.runner_cpu)

    def read(self) -> dict[str, float]:
        me = os.getpid()
        server = cpu_seconds(self.env_pid)
        return {
            "event loop": cpu_seconds(self.env_pid, self.env_pid),
            "env server": server,
            "sandboxes": self.everything() - server,
            "benchmark": cpu_seconds(me),
            "fake model": cpu_seconds(me, self.fake_model_tid),
            "machine": machine_busy_seconds(),
        }


async def metered(meter: CpuMeter, batch: Any) -> tuple[Batch, dict[str, float]]:
    """Run a batch; its result and the cores each part used meanwhile."""
    before = meter.read()
    result = await batch
    after = meter.read()
    return result, {part: (after[part] - before[part]) / result.seconds for part in before}


# ---------------------------------------------------------------------------------- runs


@dataclass
class Setup:
    """What a run needs: the env server, the client's model config and the task rows."""

    server: Any
    model: Any
    rows: list[dict[str, Any]]

    def batch(self, concurrency: int, repeats: int) -> Any:
        return run_batch(self.server.client, self.model, self.rows * repeats, concurrency)


def failure_notes(label: str, batch: Batch) -> list[str]:
    if not batch.failures:
        return []
    return [
        f"{label}: {len(batch.failures)} of {batch.episodes} episodes failed (e.g. {batch.failures[0]}); "
        "its figure is not meaningful"
    ]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrency = [r["concurrency"] for r in rows]
    figure, throughput = plt.subplots(figsize=(7, 4.2))
    throughput.plot(concurrency, [r["rate"] for r in rows], "o-", color="tab:blue", label="episodes per minute")
    throughput.set_xscale("log", base=2)
    throughput.set_xticks(concurrency, [str(c) for c in concurrency])
    throughput.set_xlabel("concurrent episodes")
    throughput.set_ylabel("episodes per minute", color="tab:blue")
    throughput.set_ylim(bottom=0)
    cores = throughput.twinx()
    series = (
        ("machine busy (all work on it)", lambda cpu: cpu["machine"], "s--", "tab:gray"),
        ("this run: env server + sandboxes + model", own_cores, "d--", "tab:green"),
        ("env-server event loop", lambda cpu: cpu["event loop"], "^--", "tab:orange"),
    )
    for label, value, style, color in series:
        cores.plot(
            concurrency, [value(r["cpu"]) for r in rows], style, color=color, label=f"{label} (cores)", alpha=0.8
        )
    cores.set_ylabel("CPU cores")
    cores.set_ylim(0, max(2.2, max(r["cpu"]["machine"] for r in rows) * 1.1))
    lines = throughput.get_legend_handles_labels()[0] + cores.get_legend_handles_labels()[0]
    throughput.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    throughput.set_title(f"harbor-env through verifiers' env server ({os.cpu_count()} cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


async def sweep(out_dir: Path, quick: bool) -> tuple[list[dict[str, Any]], str, list[str]]:
    """Throughput and CPU per concurrency, then the profile at the saturated concurrency."""
    repeats = QUICK_REPEATS if quick else REPEATS
    seconds = 15 if quick else 40
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="harbor-env-scaling-") as tmp:
        work = Path(tmp)
        config = env_config(work)
        with solving_model(work) as (model, tokenizer), contextlib.ExitStack() as accounts:
            async with env_server(config) as server:
                setup = Setup(server, train_client(model, tokenizer), list(task_rows(config).values()))
                everything = accounts.enter_context(runner_cpu("scaling", server.pid))
                meter = CpuMeter(server.pid, model._thread.native_id, everything)  # type: ignore[union-attr]
                await setup.batch(len(setup.rows), 1)  # warm-up, untimed
                for concurrency in CONCURRENCIES:
                    batch, cpu = await metered(meter, setup.batch(concurrency, repeats[concurrency]))
                    notes += failure_notes(f"concurrency {concurrency}", batch)
                    rows.append(
                        {"concurrency": concurrency, "episodes": batch.episodes, "rate": batch.per_minute, "cpu": cpu}
                    )
                # Profile a batch long enough to cover the recording after a ramp-up.
                rate = next(r["rate"] for r in rows if r["concurrency"] == SATURATED)
                ramp = 5
                profiled = asyncio.create_task(setup.batch(SATURATED, math.ceil(rate * (ramp + seconds + 15) / 60 / 7)))
                await asyncio.sleep(ramp)
                outputs = await record_profiles({"env-server": server.pid, "benchmark": os.getpid()}, out_dir, seconds)
                notes += failure_notes("profiled batch", await profiled)
        await asyncio.sleep(1.0)
        notes += leak_notes(work / "sandboxes")
    return rows, profile_summary(outputs["env-server"], outputs["benchmark"], seconds, SATURATED), notes


def own_cores(cpu: dict[str, float]) -> float:
    """Cores this run used: the env server, everything it started, the fake model."""
    return cpu["env server"] + cpu["sandboxes"] + cpu["fake model"]


def saturation_text(rows: list[dict[str, Any]]) -> str:
    best = max(rows, key=lambda r: r["rate"])
    knee = next(r for r in rows if r["rate"] >= 0.9 * best["rate"])
    cpu, per_episode = best["cpu"], 60 / best["rate"]  # cores, seconds per episode
    cores = os.cpu_count() or 1

    def ms(part: str) -> str:
        return f"{cpu[part] * per_episode * 1000:.0f} ms"

    own = own_cores(cpu) * per_episode
    return (
        f"Throughput reaches 90% of its peak ({best['rate']:.0f} episodes/min at concurrency {best['concurrency']}) "
        f"at concurrency {knee['concurrency']} and no longer grows: the machine is out of CPU "
        f"(busy {cpu['machine']:.2f} "
        f"of {cores} cores at the peak, {own_cores(cpu):.2f} of them this run's, the rest other work on the machine). "
        f"CPU per episode: {ms('env server')} in the env-server process ({ms('event loop')} on its event loop), "
        f"{ms('sandboxes')} in the sandboxes' processes, {ms('fake model')} in the fake model (its thread is far from "
        f"saturated, so the benchmark's model is not the limit). With the {cores} cores to itself, {own:.2f} CPU-s per "
        f"episode would cap this run near {cores / own * 60:.0f} episodes/min."
    )


def sweep_section(rows: list[dict[str, Any]], profile: str, notes: list[str], out_dir: Path, quick: bool) -> str:
    plot(rows, out_dir / "scaling.png")
    table = markdown_table(
        [
            "concurrency",
            "episodes",
            "eps/min",
            "env-server process (cores)",
            "its event loop (cores)",
            "sandboxes (cores)",
            "fake model (cores)",
            "machine busy (cores)",
        ],
        [
            [
                r["concurrency"],
                r["episodes"],
                f"{r['rate']:.1f}",
                f"{r['cpu']['env server']:.2f}",
                f"{r['cpu']['event loop']:.2f}",
                f"{r['cpu']['sandboxes']:.2f}",
                f"{r['cpu']['fake model']:.2f}",
                f"{r['cpu']['machine']:.2f}",
            ]
            for r in rows
        ],
    )
    text = [
        "### Scaling with concurrency",
        "",
        f"`uv run --group bench python bench/scaling.py{' --quick' if quick else ''}`: the 7 sample tasks through "
        "verifiers' env server (prime-rl's path), Terminus-2 in the local sandbox, a zero-latency scripted model in "
        f"the benchmark process; CPU from /proc during each batch ({os.cpu_count()}-core machine, shared with other "
        "work; sandboxes: everything the env server started, through a cpuacct cgroup where the host has one, as "
        "processes killed with their sandbox escape /proc's counters). Plot: `scaling.png`.",
        "",
        table,
        "",
        saturation_text(rows),
        "",
        profile,
    ]
    text += [f"- {note}" for note in notes]
    return "\n".join(text) + "\n"


async def compare(out_dir: Path, quick: bool, variant: str) -> str:
    """The current configuration against `variant`, batches alternating (ABBA), at the saturated
    concurrency: throughput, and the env server's CPU per episode (less sensitive to other load)."""
    repeats, rounds = (3, 2) if quick else (6, 4)
    sides = ("current", variant)
    episodes = dict.fromkeys(sides, 0)
    seconds = dict.fromkeys(sides, 0.0)
    cpu = {side: {"env server": 0.0, "event loop": 0.0} for side in sides}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="harbor-env-compare-") as tmp:
        work = Path(tmp)
        configs = {
            "current": env_config(work / "current"),
            variant: env_config(work / variant, harness=variant_harness(variant, work / variant, TERMINUS_OPTIONS)),
        }
        with solving_model(work) as (model, tokenizer), contextlib.ExitStack() as accounts:
            client_model = train_client(model, tokenizer)
            async with env_server(configs["current"]) as current, env_server(configs[variant]) as other:
                servers = {"current": current, variant: other}
                setups = {
                    side: Setup(servers[side], client_model, list(task_rows(configs[side]).values())) for side in sides
                }
                meters = {
                    side: CpuMeter(
                        servers[side].pid,
                        model._thread.native_id,  # type: ignore[union-attr]
                        accounts.enter_context(runner_cpu(side, servers[side].pid)),
                    )
                    for side in sides
                }
                for setup in setups.values():
                    await setup.batch(len(setup.rows), 1)  # warm-up, untimed
                for round_ in range(rounds):
                    for side in sides if round_ % 2 == 0 else sides[::-1]:
                        batch, cores = await metered(meters[side], setups[side].batch(SATURATED, repeats))
                        notes += failure_notes(side, batch)
                        episodes[side] += batch.episodes
                        seconds[side] += batch.seconds
                        for part in cpu[side]:
                            cpu[side][part] += cores[part] * batch.seconds
        await asyncio.sleep(1.0)
        for side in sides:
            notes += leak_notes(work / side / "sandboxes")
    rate = {side: episodes[side] / seconds[side] * 60 for side in sides}
    per_episode = {side: {part: cpu[side][part] / episodes[side] * 1000 for part in cpu[side]} for side in sides}
    table = markdown_table(
        ["configuration", "episodes", "eps/min", "env-server CPU ms/episode", "of which event loop"],
        [
            [
                f"`{side}` variant" if side == variant else "current",
                episodes[side],
                f"{rate[side]:.1f}",
                f"{per_episode[side]['env server']:.0f}",
                f"{per_episode[side]['event loop']:.0f}",
            ]
            for side in sides
        ],
    )
    text = [
        f"### Before/after: `{variant}` at concurrency {SATURATED}",
        "",
        f"`uv run --group bench python bench/scaling.py --compare {variant}{' --quick' if quick else ''}`: two env "
        f"servers, batches alternating, {rounds} per side.",
        "",
        table,
        "",
        f"Throughput ratio {variant} / current: {rate[variant] / rate['current']:.2f}; env-server CPU per episode "
        f"{per_episode[variant]['env server'] - per_episode['current']['env server']:+.0f} ms.",
    ]
    text += [f"- {note}" for note in notes]
    (out_dir / f"compare-{variant}.json").write_text(
        json.dumps({"rate": rate, "per_episode_ms": per_episode, "episodes": episodes, "notes": notes}, indent=1)
    )
    return "\n".join(text) + "\n"


async def section(out_dir: pathlib.Path, quick: bool = False, compare_with: str | None = None) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    if compare_with is not None:
        return await compare(out_dir, quick, compare_with)
    rows, profile, notes = await sweep(out_dir, quick)
    (out_dir / "scaling.json").write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
    return sweep_section(rows, profile, notes, out_dir, quick)


def main() -> None:
    parser = common.section_arguments(__doc__, "fewer episodes, a shorter profile")
    parser.add_argument(
        "--compare", choices=sorted(VARIANTS), help="the current configuration against this variant instead"
    )
    args = parser.parse_args()
    print(asyncio.run(section(args.out, args.quick, args.compare)))


if __name__ == "__main__":
    main()
