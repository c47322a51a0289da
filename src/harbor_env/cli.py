"""The command line: `python -m src.train --config FILE ...` and this project's `rl` command.

Training runs in prime-rl's own environment (its CUDA stack never enters this project's):
both commands check the run first, then hand over to `uv run --project prime-rl rl @ FILE`
with this package layered in, from the project root, so every process prime-rl starts
(orchestrator, env servers, trainer) can import `harbor_env` and relative paths in the config
resolve from the project root.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomli_w
from dotenv import load_dotenv

from harbor_env.preflight import (
    Problem,
    SourcePlan,
    check_docker,
    check_gpus,
    check_prime_rl,
    check_source,
)
from harbor_env.run_config import ConfigError, RunConfig

ROOT = Path(__file__).resolve().parents[2]
SMOKE_TASKS = 5
SMOKE_STEPS = 3


def _load_dotenv(root: Path) -> None:
    """Load .env (values already in the environment win); say how wandb will log."""
    load_dotenv(root / ".env", override=False)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") is None:
        os.environ["WANDB_MODE"] = "offline"
        print("note: WANDB_API_KEY is not set (.env or environment): wandb logs offline; `wandb sync` uploads later")


def _check_config(run: RunConfig) -> tuple[list[SourcePlan], list[Problem]]:
    plans, problems = [], []
    for source in run.harbor_sources():
        plan, found = check_source(source)
        problems += found
        if plan is not None:
            plans.append(plan)
    return plans, problems


def _print_plan(run: RunConfig, plans: list[SourcePlan], prime_rl: Path, prime_rl_ready: bool, launch: list[str]) -> None:
    train, infer = run.gpus
    lora = run.lora
    print(f"run plan for {run.path} (dry run: nothing is started)")
    print(f"  model        {run.model}" + (f", LoRA rank {lora[0]} alpha {lora[1]}" if lora else ", full fine-tuning"))
    print(f"  steps        max_steps {run.get('max_steps', 'unlimited')}, batch_size {run.get('orchestrator.batch_size', '?')} "
          f"rollouts, group_size {run.get('orchestrator.group_size', '?')}")  # fmt: skip
    print(f"  GPUs         {infer} inference + {train} trainer (deployment {run.get('deployment.type', 'single_node')})")
    print("  processes    inference server (vLLM behind vllm-router, :8000); orchestrator; trainer (torchrun, "
          f"{train} GPU{'s' if train != 1 else ''}); {len(run.sources())} env server(s), one per source (tcp://127.0.0.1:5000+i)")  # fmt: skip
    for plan in plans:
        taskset = plan.source.env.get("taskset", {})
        print(f"  source       {plan.source.kind} '{plan.source.name}': {plan.tasks} tasks from "
              f"{taskset.get('path', 'datasets/harbor_tasks')}, environment {plan.environment}, agent {plan.agent}")  # fmt: skip
    print(f"  outputs      {ROOT / str(run.get('output_dir', 'outputs'))}")
    print(f"  launch       (cd {ROOT} && {' '.join(launch)})")
    print("  validated    the HarborEnvironment sections (verifiers' own config classes) and every task folder")
    if not prime_rl_ready:
        print(f"  not validated: the rest of the config against prime-rl's schema (no prime-rl environment at {prime_rl}); "
              "after `bash scripts/setup-prime-rl.sh`, `uv run rl @ FILE --dry-run` checks it with prime-rl itself")  # fmt: skip


# Harbor's optional SDKs for cloud environment types (harbor[modal], ...), added on demand.
CLOUD_EXTRAS = {"modal", "daytona", "e2b", "runloop", "gke", "beam", "blaxel", "novita", "tensorlake", "islo"}


def _launch_command(prime_rl: Path, config: Path, overrides: list[str], plans: list[SourcePlan]) -> list[str]:
    extras = sorted({p.environment for p in plans} & CLOUD_EXTRAS)
    layered = ["--with-editable", str(ROOT), *(["--with", f"harbor[{','.join(extras)}]"] if extras else [])]
    return ["uv", "run", "--project", str(prime_rl), *layered, "rl", "@", str(config), *overrides]


def _child_env() -> dict[str, str]:
    """The environment prime-rl and all its processes get: this package importable everywhere."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}


def _hand_over(command: list[str]) -> int:
    env = _child_env()
    os.chdir(ROOT)
    uv = shutil.which("uv")
    if uv is None:
        print("error: uv not found on PATH; install it (https://docs.astral.sh/uv/)", file=sys.stderr)
        return 2
    os.execve(uv, command, env)
    return 0  # not reached


def _smoke_config(run: RunConfig, out_dir: Path = ROOT / "outputs" / "smoke") -> Path:
    """A copy of the config for a smoke run: a few tasks per HarborEnvironment source, a few steps.

    A file rather than `--key value` overrides: prime-rl replaces lists (the sources) whole."""
    data = run.data
    data["max_steps"] = SMOKE_STEPS
    for kind in ("train", "eval"):
        for entry in data.get("orchestrator", {}).get(kind, {}).get("source", []) or []:
            if entry.get("env", {}).get("taskset", {}).get("id") == "harbor-env":
                entry["env"]["taskset"]["limit"] = SMOKE_TASKS
    out = out_dir / run.path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tomli_w.dumps(data).encode())
    return out


def _report(problems: list[Problem], heading: str) -> None:
    print(heading, file=sys.stderr)
    for problem in problems:
        print(f"  ✗ {problem}", file=sys.stderr)


def _evaluate(run: RunConfig, args: argparse.Namespace) -> int:
    from verifiers.v1.utils.loaders import resolve_env_config

    from harbor_env.evaluate import evaluate, results_table

    sources = run.harbor_sources()
    source = next((s for s in sources if s.kind == "eval"), sources[0])
    config = resolve_env_config(source.env)
    job_name = args.job_name or dt.datetime.now().strftime("%Y-%m-%d__%H-%M-%S")
    job_dir = Path(args.jobs_dir) / job_name
    print(f"evaluating {args.model or run.model} at {args.base_url} on source '{source.name}' → {job_dir}")
    rows = asyncio.run(
        evaluate(config, base_url=args.base_url, model=args.model or run.model, api_key_var=args.api_key_var,
                 job_dir=job_dir, rollouts_per_task=args.rollouts, concurrency=args.concurrency)  # fmt: skip
    )
    print(results_table(rows))
    print(f"\ntrials in Harbor's job layout: harbor view {job_dir.parent}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.train",
        description="Train (LoRA GRPO through prime-rl) or evaluate an agent on Harbor tasks.",
        epilog="Arguments after `--` go to prime-rl unchanged, e.g. -- --max-steps 50",
    )
    parser.add_argument("--config", required=True, type=Path, help="prime-rl run config (TOML), e.g. configs/harbor_8b.toml")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="check and print what would start; start nothing")
    mode.add_argument("--test", action="store_true", help=f"smoke run: {SMOKE_TASKS} tasks per source, {SMOKE_STEPS} steps")
    mode.add_argument("--eval", action="store_true", help="rollouts only, no training, against --base-url")
    parser.add_argument("--base-url", default="http://localhost:8000/v1", help="OpenAI-compatible server for --eval")
    parser.add_argument("--model", help="model name for --eval (default: the config's model.name)")
    parser.add_argument("--api-key-var", default="OPENAI_API_KEY", help="environment variable holding the --eval server's key")
    parser.add_argument("--rollouts", type=int, default=1, help="--eval: rollouts per task")
    parser.add_argument("--concurrency", type=int, default=4, help="--eval: episodes at once")
    parser.add_argument("--jobs-dir", default=str(ROOT / "outputs" / "eval"), help="--eval: where the Harbor job folder goes")
    parser.add_argument("--job-name", help="--eval: job folder name (default: a timestamp)")
    parser.add_argument("--prime-rl", type=Path, default=ROOT / "prime-rl", help="prime-rl checkout (default: the submodule)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    _load_dotenv(ROOT)
    try:
        run = RunConfig.load(args.config, overrides)
        plans, problems = _check_config(run)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        _report(problems, f"error: {args.config} is not valid:")
        return 2
    if args.eval:
        return _evaluate(run, args)
    config_path = _smoke_config(run) if args.test else run.path
    command = _launch_command(args.prime_rl.resolve(), config_path, [] if args.test else overrides, plans)
    prime_rl_problems = check_prime_rl(args.prime_rl.resolve())
    host = prime_rl_problems + check_gpus(run) + check_docker(plans)
    if args.dry_run:
        _print_plan(run, plans, args.prime_rl.resolve(), not prime_rl_problems, command)
        if host:
            _report(host, "not ready to run on this host:")
        if not prime_rl_problems:
            # prime-rl's own dry run validates the whole config and writes the per-process configs.
            return subprocess.run([*command, "--dry-run"], cwd=ROOT, env=_child_env()).returncode
        return 0
    if host:
        _report(host, "error: cannot start the run on this host:")
        return 2
    return _hand_over(command)


def rl_main() -> int:
    """`uv run rl @ configs/x.toml [--a.b value ...]`: prime-rl's command, checked, from this project."""
    argv = sys.argv[1:]
    files = [argv[i + 1] for i, a in enumerate(argv) if a == "@" and i + 1 < len(argv)]
    if len(files) != 1:
        print("usage: uv run rl @ configs/harbor_8b.toml [--key.path value ...] [--dry-run]", file=sys.stderr)
        return 2
    rest = [a for i, a in enumerate(argv) if a != "@" and (i == 0 or argv[i - 1] != "@")]
    flags = ["--dry-run"] if "--dry-run" in rest else []
    overrides = [a for a in rest if a != "--dry-run"]
    return main(["--config", files[0], *flags, "--", *overrides])
