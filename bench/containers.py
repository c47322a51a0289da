"""Containers against the local sandbox on the host's root and on the task's image, same tasks,
one run: the first start, start -> first command -> stop, and a whole solving episode through the
env-server wire.

- sides: `local` (the local sandbox on the host's root, image_mode "host"), `image` (the local
  sandbox on the task's image: image_mode "image", an overlay of the cached root), `podman`
  (Harbor's podman environment).
- first start: each task's first cycle on an empty image cache (image: podman build + unpack;
  podman: its compose build). podman's layer cache is warm when the setup or the tests built
  these Dockerfiles before, as on a machine that trained on them.
- cycle: Harbor's own environment of each side, made as a Trial makes it (EnvironmentFactory,
  with harbor-env's compose overlay for podman): `start()`, `exec("true")`, `stop(delete=True)`;
  warm (what training sees after each task's first episode).
- episode: a solving Terminus-2 policy (the fake model) through an env server per side.

Sides alternate within each round (ABBA), and the report gives medians and their ratio.
Needs podman as scripts/containers/setup.sh makes it.

Usage: uv run python bench/containers.py [--rounds N] [--tasks NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

from harbor.environments.factory import EnvironmentFactory  # noqa: E402
from harbor.models.task.task import Task  # noqa: E402
from harbor.models.trial.paths import TrialPaths  # noqa: E402

from harbor_env.harness import TrialEnvironmentConfig  # noqa: E402
from harbor_env.testing.configs import env_config, task_data  # noqa: E402
from harbor_env.testing.containers import podman_unready  # noqa: E402
from harbor_env.testing.env_server import connected, env_server_process  # noqa: E402
from harbor_env.testing.episodes import episode_failure, run_episode, solving_model  # noqa: E402
from harbor_env.testing.tasks import SAMPLE_TASKS  # noqa: E402

SIDES = ("local", "image", "podman")
# Cycles also time image mode's other writable layer: `copy` (WORKDIR and home copied, the rest of
# the image read-only), what hosts without root get.
CYCLE_SIDES = ("local", "image", "copy", "podman")
DEFAULT_TASKS = ["repair-config", "csv-to-json", "log-analysis"]


def environment_config(side: str, work: Path) -> TrialEnvironmentConfig:
    if side == "podman":
        return TrialEnvironmentConfig(type="podman")
    kwargs = {"sandbox_dir": str(work / "sandboxes"), "image_mode": "host" if side == "local" else "image"}
    if side == "copy":
        kwargs["writable_layer"] = "copy"
    return TrialEnvironmentConfig(type="local", kwargs={**kwargs, "image_cache": str(work / "image-cache")})


async def cycle(side: str, task_dir: Path, work: Path) -> tuple[float, float, float]:
    """Seconds of start, first exec, stop of one environment of `side` for the task."""
    task = Task(task_dir)
    session = f"{task.name}__{uuid.uuid4().hex[:7]}"
    trial_paths = TrialPaths(work / "trials" / session)
    trial_paths.mkdir()
    environment = EnvironmentFactory.create_environment_from_config(
        config=environment_config(side, work).to_harbor(task_dir),
        environment_dir=task.paths.environment_dir,
        environment_name=task.name,
        session_id=session,
        trial_paths=trial_paths,
        task_env_config=task.config.environment.model_copy(deep=True),
    )
    began = time.perf_counter()
    await environment.start(force_build=False)
    started = time.perf_counter()
    try:
        result = await environment.exec("true")
        assert result.return_code == 0, result
        executed = time.perf_counter()
    finally:
        await environment.stop(delete=True)
    stopped = time.perf_counter()
    return started - began, executed - started, stopped - executed


async def episodes(tasks: list[str], rounds: int, work: Path) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    with solving_model(work) as (server, tokenizer):
        configs = {
            side: env_config(
                work / side, include=tasks[:1], harness={"environment": environment_config(side, work).model_dump()}
            )
            for side in SIDES
        }
        with contextlib.ExitStack() as servers:
            async with contextlib.AsyncExitStack() as connections:
                clients = {}
                for side in SIDES:
                    _, address = servers.enter_context(env_server_process(configs[side]))
                    clients[side] = await connections.enter_async_context(connected(address))
                for name in tasks:  # warm-up: the images, the first-episode imports
                    for side in SIDES:
                        await run_episode(clients[side], server, tokenizer, task_data(name))
                for round_ in range(rounds):
                    order = SIDES if round_ % 2 == 0 else SIDES[::-1]
                    for name in tasks:
                        for side in order:
                            began = time.perf_counter()
                            episode = await run_episode(clients[side], server, tokenizer, task_data(name))
                            seconds[side].append(time.perf_counter() - began)
                            failure = episode_failure(episode)
                            assert failure is None, f"{side} {name}: {failure}"
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS)
    parser.add_argument("--cycles-only", action="store_true", help="skip the whole episodes")
    args = parser.parse_args()
    if (why := podman_unready()) is not None:
        raise SystemExit(f"bench/containers.py: {why}")
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-") as scratch:
        work = Path(scratch)
        phases: dict[str, list[tuple[float, float, float]]] = {side: [] for side in CYCLE_SIDES}
        first: dict[str, list[float]] = {side: [] for side in CYCLE_SIDES}
        for name in args.tasks:  # each task's first start: the images are made
            for side in CYCLE_SIDES:
                first[side].append(sum(await cycle(side, SAMPLE_TASKS / name, work)))
        for round_ in range(args.rounds):
            order = CYCLE_SIDES if round_ % 2 == 0 else CYCLE_SIDES[::-1]
            for name in args.tasks:
                for side in order:
                    phases[side].append(await cycle(side, SAMPLE_TASKS / name, work))
        whole = {side: [] for side in SIDES} if args.cycles_only else await episodes(args.tasks, args.rounds, work)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000 if values else float("nan")

    print(f"tasks: {', '.join(args.tasks)}; {args.rounds} rounds; medians in ms")
    print("| side | first start, exec, stop | start | first exec | stop | start, exec, stop | solving episode |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    totals = {}
    for side in CYCLE_SIDES:
        start, exec_, stop = (ms([p[i] for p in phases[side]]) for i in range(3))
        totals[side] = ms([sum(p) for p in phases[side]])
        episode = ms(whole.get(side, []))
        print(
            f"| {side} | {ms(first[side]):.0f} | {start:.0f} | {exec_:.0f} | {stop:.0f} | {totals[side]:.0f} "
            f"| {episode:.0f} |"
        )
    for side in ("image", "copy", "podman"):
        target = " (image mode's target: <= 2x)" if side in ("image", "copy") else ""
        episode = ms(whole.get(side, [])) / ms(whole["local"])
        print(f"{side} / local: cycle {totals[side] / totals['local']:.2f}x{target}, episode {episode:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
