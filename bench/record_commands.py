"""Record the sandbox commands of one real episode, for bench/commands.py to replay.

One episode of the sample task `repair-config` (HarborEnvironment in this process, Terminus-2,
the local sandbox, the scripted model solving it), with every `LocalSandbox._run` logged: the
argv, user, working directory and timeout, in order. Written to bench/fixtures/episode_commands.json.

Usage: uv run python bench/record_commands.py
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

from harbor_env.sandbox import LocalSandbox  # noqa: E402
from harbor_env.testing.configs import env_config  # noqa: E402
from harbor_env.testing.episodes import run_in_process  # noqa: E402
from harbor_env.testing.inference import FakeInferenceServer  # noqa: E402
from harbor_env.testing.policies import SOLVING  # noqa: E402
from harbor_env.testing.tasks import TASK  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "episode_commands.json"


async def record() -> list[dict]:
    recorded: list[dict] = []
    original = LocalSandbox._run

    async def logged(self, command, *, user, cwd=None, env=None, stdin=None, stdout=None, timeout_sec=None):
        recorded.append(
            {
                "argv": command,
                "user": user,
                "cwd": cwd,
                "timeout_sec": timeout_sec,
                "stdin": "bytes" if isinstance(stdin, bytes) else ("file" if stdin is not None else None),
                "stdout": "file" if stdout is not None else None,
            }
        )
        return await original(
            self, command, user=user, cwd=cwd, env=env, stdin=stdin, stdout=stdout, timeout_sec=timeout_sec
        )

    LocalSandbox._run = logged
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = build_test_tokenizer(work / "tokenizer")
        with FakeInferenceServer(tokenizer, SOLVING) as server:
            episode = await run_in_process(env_config(work, include=[TASK]), server, tokenizer)
    (trace,) = episode.traces
    if trace.reward != 1.0:
        raise SystemExit(f"the recorded episode did not solve its task (reward {trace.reward})")
    return recorded


def main() -> None:
    recorded = asyncio.run(record())
    FIXTURE.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"{len(recorded)} commands -> {FIXTURE}")


if __name__ == "__main__":
    main()
