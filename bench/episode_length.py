"""Env-server CPU against episode length: per turn and per episode at 5, 20, 40 and 80 turns.

Each turn of a scripted episode types one command that prints ~2 KB of log lines (about 1,700
tokens of the test tokenizer, ~500 of Qwen3's), so the chat grows by that much a turn; the last
two turns say the task is complete (Terminus-2 asks to confirm). Real Terminus-2 in the local
sandbox, through a verifiers env server in its own process, as prime-rl runs it; the fake model
answers at once. What is measured is the env server's own CPU (its threads; the sandbox's
processes are not its), read from /proc before and after each episode.

Two renderers, in the same env server, episodes alternating: Qwen3's (prime-rl's configs), which
extends each turn's prompt from the last turn's tokens (`bridge_to_next_turn`), and the default
one, which renders the whole chat again every turn. If the cost per turn grows with the chat's
length, something re-reads the whole chat each turn; the renderer's part is the difference
between the two.

Usage: uv run --group bench python bench/episode_length.py [--quick] [--out bench/results]
(--quick: 5 and 20 turns only.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402
import verifiers.v1 as vf  # noqa: E402
from renderers import DefaultRendererConfig  # noqa: E402

from harbor_env.testing.configs import SAMPLING, env_config, task_rows  # noqa: E402
from harbor_env.testing.env_server import EnvServer, env_server  # noqa: E402
from harbor_env.testing.episodes import episode_failure, train_client  # noqa: E402
from harbor_env.testing.inference import FakeInferenceServer, PolicyInput  # noqa: E402
from harbor_env.testing.policies import terminus_reply  # noqa: E402
from harbor_env.testing.processes import cpu_seconds  # noqa: E402
from harbor_env.testing.tasks import write_task  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402

TURNS = (5, 20, 40, 80)
QUICK_TURNS = (5, 20)
LINES_PER_TURN = 25  # ~80 bytes each: ~2 KB of output a turn
LINE = "%g: GET /api/v1/items status=200 bytes=5120 agent=curl/8.1 upstream=10.0.0.7:8080"
MARKER = "[episode length benchmark]"


def output_command(turn: int) -> str:
    first = turn * LINES_PER_TURN
    return f'seq -f "{LINE}" {first} {first + LINES_PER_TURN - 1}\n'


def policy(turns_by_session: dict[str, int]) -> object:
    """`turns - 2` commands, then task_complete twice; the length comes from the session's plan."""

    def reply(request: PolicyInput) -> str:
        turns = turns_by_session[request.session_id]
        if request.turn >= turns - 2:
            return terminus_reply(task_complete=True)
        return terminus_reply(output_command(request.turn), duration=0.1)

    return reply


class Planned(dict):
    """Session id -> planned turns, assigned at a session's first call from a queue of plans."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[int] = []

    def __missing__(self, session: str) -> int:
        self[session] = self.queue.pop(0)
        return self[session]


async def one_episode(
    server: EnvServer, model: FakeInferenceServer, client: vf.TrainClientConfig, row: dict, plan: Planned, turns: int
) -> dict:
    plan.queue.append(turns)
    before = cpu_seconds(server.pid)
    episode = await server.client.run(client, "test-model", SAMPLING, row)
    cpu = cpu_seconds(server.pid) - before
    failure = episode_failure(episode)
    (trace,) = episode.traces
    calls = model.completions_of(trace.id)
    assert failure is None, f"{turns}-turn episode: {failure}"
    assert len(calls) == turns, f"{turns}-turn episode made {len(calls)} model calls"
    return {
        "turns": turns,
        "cpu_s": cpu,
        "last_prompt_tokens": len(calls[-1].prompt_ids),
        "branches": len(trace.branches),
    }


async def section(out: Path, quick: bool) -> str:
    turns_list = QUICK_TURNS if quick else TURNS
    with tempfile.TemporaryDirectory(prefix="episode-length-") as tmp:
        work = Path(tmp)
        tokenizer = build_test_tokenizer(work / "tokenizer")
        write_task(work / "tasks", "long-output", instruction=f"{MARKER} Print logs.", agent_timeout=1800)
        config = env_config(work, tasks=work / "tasks", include=["long-output"])
        row = task_rows(config)["long-output"]
        plan = Planned()
        with FakeInferenceServer(tokenizer, policy(plan), max_model_len=1_000_000) as model:
            incremental = train_client(model, tokenizer)
            full = incremental.model_copy(update={"renderer": DefaultRendererConfig()})
            variants = {"qwen3 (incremental)": incremental, "default (full re-render)": full}
            async with env_server(config) as server:
                for client in variants.values():  # warm up: imports, renderer pools, first sandbox
                    await one_episode(server, model, client, row, plan, 3)
                results: dict[str, list[dict]] = {name: [] for name in variants}
                for turns in turns_list:
                    for name, client in variants.items():
                        results[name].append(await one_episode(server, model, client, row, plan, turns))
    out.mkdir(parents=True, exist_ok=True)
    (out / "episode_length.json").write_text(json.dumps(results, indent=2))
    (inc_name, inc), (full_name, full_rows) = results.items()
    base_inc = inc[0]["cpu_s"] / inc[0]["turns"]
    rows = []
    for a, b in zip(inc, full_rows, strict=True):
        per_a, per_b = a["cpu_s"] / a["turns"], b["cpu_s"] / b["turns"]
        rows.append(
            [
                a["turns"],
                f"{a['last_prompt_tokens']:,}",
                f"{a['cpu_s']:.2f}",
                f"{per_a * 1000:.0f}",
                f"{per_a / base_inc:.2f}",
                f"{b['cpu_s']:.2f}",
                f"{per_b * 1000:.0f}",
                f"{per_b / per_a:.2f}",
                f"{a['branches']}/{b['branches']}",
            ]
        )
    header = [
        "turns",
        "last prompt, tokens",
        f"CPU s/episode, {inc_name}",
        "CPU ms/turn",
        "per turn vs 5 turns",
        f"CPU s/episode, {full_name}",
        "CPU ms/turn",
        "full / incremental, per turn",
        "branches",
    ]
    return "### Env-server CPU against episode length\n\n" + common.markdown_table(header, rows)


if __name__ == "__main__":
    common.run_section_alone(__doc__, "5 and 20 turns only", section)
