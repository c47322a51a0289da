"""One checkout's env server, driven batch by batch over stdin: for bench/baseline.py.

Run with that checkout's `src` and `bench` first on PYTHONPATH (baseline.py does); it uses the
checkout's own helpers to build the env config, start verifiers' env server, the fake solving
model and run batches, so the env server runs that checkout's harbor_env. Two layouts are known:
today's (harbor_env.testing) and the one before issue 16 (bench/common.py). The packages
(verifiers, Harbor, renderers) are this process's, the same for both.

Protocol: it prints `{"ready": true, "harbor_env": its __init__.py}` once warmed up; then per
line `CONCURRENCY REPEATS` on stdin it runs the sample tasks REPEATS times at CONCURRENCY and
prints one JSON line: episodes, failures (their reasons), seconds, and the env server process's
own CPU seconds in the batch (/proc: all its threads, not its children). An empty line or EOF
ends it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path


def helpers():
    """(env_config(work), task_rows, env_server, solving_model, train_client, run_batch, cpu_seconds)."""
    try:
        from harbor_env.testing.defaults import apply_environment_defaults
    except ImportError:  # before issue 16: bench/common.py sets the defaults on import
        import common  # type: ignore[import-not-found]

        from harbor_env.testing.tokenizer import train_client_config  # type: ignore[import-not-found]

        return (
            lambda work: common.env_config(common.SAMPLE_TASKS, work),
            common.task_rows,
            common.env_server,
            common.solving_model,
            lambda model, tokenizer: train_client_config(model.base_url, tokenizer),
            common.run_batch,
            common.cpu_seconds,
        )
    apply_environment_defaults()
    from harbor_env.testing.configs import env_config, task_rows
    from harbor_env.testing.env_server import env_server
    from harbor_env.testing.episodes import run_batch, solving_model, train_client
    from harbor_env.testing.processes import cpu_seconds

    return env_config, task_rows, env_server, solving_model, train_client, run_batch, cpu_seconds


async def serve() -> None:
    import harbor_env

    env_config, task_rows, env_server, solving_model, train_client, run_batch, cpu_seconds = helpers()
    lines = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    with tempfile.TemporaryDirectory(prefix="harbor-env-tree-worker-") as tmp:
        work = Path(tmp)
        config = env_config(work)
        rows = list(task_rows(config).values())
        with solving_model(work) as (model, tokenizer):
            client = train_client(model, tokenizer)
            async with env_server(config) as server:
                await run_batch(server.client, client, rows, len(rows))  # warm-up, untimed
                print(json.dumps({"ready": True, "harbor_env": harbor_env.__file__}), flush=True)
                while request := (await lines.readline()).decode().strip():
                    concurrency, repeats = (int(word) for word in request.split())
                    before = cpu_seconds(server.pid)
                    batch = await run_batch(server.client, client, rows * repeats, concurrency)
                    figures = {
                        "episodes": batch.episodes,
                        "failures": batch.failures,
                        "seconds": batch.seconds,
                        "env_server_cpu_s": cpu_seconds(server.pid) - before,
                    }
                    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
