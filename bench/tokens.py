"""Token cost per episode: what enters training with merged branches, against step-wise samples.

Scripted episodes of 5, 10, 20 and 40 model calls (real Terminus-2 in the local sandbox, through
a verifiers env server in its own process, as prime-rl runs it): N-2 replies that each type one
`echo`, then `task_complete` twice (Terminus-2 asks to confirm). The number of model calls is
checked against the fake inference server's records. Then a realistic multi-turn mix: the 7
sample tasks (datasets/harbor_tasks), each solved by the scripted policy (`SolveEachTask`: it
types the task's solution, then waits, one model call at a time, until the script has exited).

Tokens in branches = the sum of the episode's branch lengths (what the trainer receives).
Step-wise tokens = every model call's prompt plus completion as its own sample (training
without merging). The target at 20 turns is a ratio of at most 0.15.

Usage: uv run --group bench python bench/tokens.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults  # noqa: E402

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402

from harbor_env.testing.configs import SAMPLING, env_config, task_rows  # noqa: E402
from harbor_env.testing.env_server import EnvServer, env_server  # noqa: E402
from harbor_env.testing.episodes import episode_failure, train_client  # noqa: E402
from harbor_env.testing.inference import FakeInferenceServer  # noqa: E402
from harbor_env.testing.policies import ScriptedPolicy, SolveEachTask, terminus_reply  # noqa: E402
from harbor_env.testing.processes import processes_mentioning  # noqa: E402
from harbor_env.testing.tasks import SAMPLE_TASKS, write_task  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402

TURNS = (5, 10, 20, 40)
QUICK_TURNS = (5, 20)
TARGET_TURNS, TARGET_RATIO = 20, 0.15


def marker(turns: int) -> str:
    return f"[tokens benchmark: {turns} turns]"


def replies(turns: int) -> list[str]:
    """`turns` model calls: turns-2 commands, then task_complete and its confirmation."""
    commands = [terminus_reply(f"echo step {k}\n", duration=0.1) for k in range(turns - 2)]
    return commands + [terminus_reply(task_complete=True)] * 2


def token_counts(trace, calls: list) -> dict:  # noqa: ANN001  (a verifiers Trace, GenerateRecords)
    return {
        "model_calls": len(calls),
        "reward": trace.reward,
        "branches": len(trace.branches),
        "sampled_tokens": sum(len(c.completion_ids) for c in calls),
        "tokens_in_branches": sum(len(b.token_ids) for b in trace.branches),
        "stepwise_tokens": sum(len(c.prompt_ids) + len(c.completion_ids) for c in calls),
    }


async def fixed_length(server: EnvServer, work: Path, tokenizer: Path, turn_counts: tuple[int, ...]) -> list[dict]:
    """One episode per turn count; one row per episode."""
    for n in turn_counts:
        write_task(
            work / "tasks",
            f"turns-{n}",
            instruction=f"{marker(n)} Print a few lines, then finish.",
            agent_timeout=600,
            verifier_timeout=30,
        )
    rows = task_rows(env_config(work, tasks=work / "tasks"))
    policy = ScriptedPolicy({marker(n): replies(n) for n in turn_counts}, default=[])
    with FakeInferenceServer(tokenizer, policy) as model:
        client = train_client(model, tokenizer)
        episodes = await asyncio.gather(
            *(server.client.run(client, "test-model", SAMPLING, rows[f"turns-{n}"]) for n in turn_counts)
        )
        results = []
        for n, episode in zip(turn_counts, episodes, strict=True):
            (trace,) = episode.traces
            calls = model.completions_of(trace.id)
            if not trace.ok or len(calls) != n:
                raise RuntimeError(
                    f"{n}-turn episode: ok={trace.ok}, {len(calls)} model calls (expected {n}), errors={trace.errors}"
                )
            results.append({"turns": n, **token_counts(trace, calls)})
    return results


async def sample_tasks(server: EnvServer, work: Path, tokenizer: Path) -> list[dict]:
    """Every sample task once, solved by the scripted policy; one row per episode."""
    rows = task_rows(env_config(work, tasks=SAMPLE_TASKS))
    with FakeInferenceServer(tokenizer, SolveEachTask(SAMPLE_TASKS, wait_until_done=True)) as model:
        client = train_client(model, tokenizer)
        episodes = await asyncio.gather(
            *(server.client.run(client, "test-model", SAMPLING, row) for row in rows.values())
        )
        results = []
        for name, episode in zip(rows, episodes, strict=True):
            why = episode_failure(episode)
            if why is not None:
                raise RuntimeError(f"sample task {name}: {why}")
            (trace,) = episode.traces
            results.append({"task": name, **token_counts(trace, model.completions_of(trace.id))})
    return results


async def measure(turn_counts: tuple[int, ...]) -> tuple[list[dict], list[dict]]:
    """The fixed-length episodes and the sample-task mix, through one env server (its taskset
    config does not limit what it runs: each request carries its task's folder)."""
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-tokens-") as tmp:
        work = Path(tmp)
        tokenizer = build_test_tokenizer(work / "tokenizer")
        async with env_server(env_config(work, tasks=SAMPLE_TASKS)) as server:
            fixed = await fixed_length(server, work, tokenizer, turn_counts)
            mix = await sample_tasks(server, work, tokenizer)
        leaked = processes_mentioning(str(work / "sandboxes"))
        if leaked:
            raise RuntimeError(f"sandbox processes left behind: {sorted(leaked)}")
    return fixed, mix


def branch_share(rows: list[dict]) -> float:
    """Tokens in branches over step-wise tokens, summed over `rows`."""
    return sum(r["tokens_in_branches"] for r in rows) / sum(r["stepwise_tokens"] for r in rows)


async def section(out_dir: Path, quick: bool = False) -> str:
    turn_counts = QUICK_TURNS if quick else TURNS
    results, mix = await measure(turn_counts)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokens.json").write_text(json.dumps({"fixed_length": results, "sample_tasks": mix}, indent=2))
    mix_table = common.markdown_table(
        ["task", "model calls", "branches", "tokens in branches", "step-wise tokens", "ratio"],
        [
            [
                r["task"],
                r["model_calls"],
                r["branches"],
                r["tokens_in_branches"],
                r["stepwise_tokens"],
                f"{branch_share([r]):.3f}",
            ]
            for r in mix
        ],
    )
    table = common.markdown_table(
        ["turns", "branches", "tokens in branches", "step-wise tokens", "ratio"],
        [
            [
                r["turns"],
                r["branches"],
                r["tokens_in_branches"],
                r["stepwise_tokens"],
                f"{r['tokens_in_branches'] / r['stepwise_tokens']:.3f}",
            ]
            for r in results
        ],
    )
    at_target = next(r for r in results if r["turns"] == TARGET_TURNS)
    ratio = at_target["tokens_in_branches"] / at_target["stepwise_tokens"]
    single = all(r["branches"] == 1 for r in results)
    command = "uv run --group bench python bench/tokens.py" + (" --quick" if quick else "")
    return "\n".join(
        [
            "### Token cost per episode",
            "",
            f"`{command}` (one scripted episode per turn count, real Terminus-2, local sandbox, env server"
            " and client; model calls per episode checked against the fake server's records)",
            "",
            table,
            "",
            (
                "Every episode gave one branch (one training sample)"
                if single
                else "Some episodes gave more than one branch"
            )
            + f"; at {TARGET_TURNS} turns the trainer receives {ratio:.3f} of the tokens step-wise training would"
            f" ({'meets' if ratio <= TARGET_RATIO else 'misses'} the ≤ {TARGET_RATIO} target), and the ratio falls"
            " roughly as 1/turns because each step-wise sample repeats the whole history. Token counts come from"
            " the small offline ChatML test tokenizer (byte-level BPE, 2,000 tokens, trained on Terminus-2's"
            " templates), so absolute counts differ from a real model's; the ratio depends mostly on how the history"
            " grows,"
            " so it carries over approximately.",
            "",
            "The sample tasks, solved by the scripted policy (every episode scored 1.0):",
            "",
            mix_table,
            "",
            f"Over the mix ({sum(r['model_calls'] for r in mix)} model calls in {len(mix)} episodes, "
            f"{sum(r['branches'] for r in mix)} branches): tokens in branches / step-wise = {branch_share(mix):.3f}.",
        ]
    )


def main() -> None:
    common.run_section_alone(__doc__, f"only {', '.join(map(str, QUICK_TURNS))} turns", section)


if __name__ == "__main__":
    main()
