"""The command line: `python -m src.train --config FILE ...` and this checkout's `rl` command.

Training runs in prime-rl's own environment (its CUDA stack and its pinned verifiers, harbor,
renderers and transformers never meet this project's): both commands check the run first, then
start prime-rl's own `rl` once, from the project root (`handover.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import tomli_w
from dotenv import load_dotenv

from harbor_env.errors import ConfigError
from harbor_env.launcher.handover import HANDOVER_MARK, PrimeRL, StackReport, project_root, source_path
from harbor_env.launcher.preflight import Problem, SourcePlan, check_container_engines, check_gpus, check_source
from harbor_env.launcher.run_config import RunConfig

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


def _print_plan(
    run: RunConfig, plans: list[SourcePlan], root: Path, prime_rl: PrimeRL, stack: StackReport | None, launch: list[str]
) -> None:
    train, infer = run.gpus
    lora = run.lora
    print(f"run plan for {' @ '.join(map(str, run.paths))} (dry run: nothing is started)")
    print(f"  model        {run.model}" + (f", LoRA rank {lora[0]} alpha {lora[1]}" if lora else ", full fine-tuning"))
    print(
        f"  steps        max_steps {run.get('max_steps', 'unlimited')}, "
        f"batch_size {run.get('orchestrator.batch_size', '?')} "
        f"rollouts, group_size {run.get('orchestrator.group_size', '?')}"
    )
    print(
        f"  GPUs         {infer} inference + {train} trainer (deployment {run.get('deployment.type', 'single_node')})"
    )
    print(
        "  processes    inference server (vLLM behind vllm-router, :8000); orchestrator; trainer (torchrun, "
        f"{train} GPU{'s' if train != 1 else ''}); {len(run.sources())} env server(s), one per source (tcp://127.0.0.1:5000+i)"
    )
    for plan in plans:
        print(
            f"  source       {plan.source.kind} '{plan.source.name}': {plan.origin}, environment {plan.environment}, "
            f"agent {plan.agent}"
        )
    print(f"  outputs      {root / str(run.get('output_dir', 'outputs'))}")
    src = source_path(root)
    print(f"  launch       (cd {root} && {f'PYTHONPATH={src} ' if src else ''}{' '.join(launch)})")
    if stack is not None:
        print(f"  prime-rl     {prime_rl.python}: {stack.describe()}")
    print("  validated    the HarborEnvironment sections (verifiers' own config classes) and every task folder")
    if stack is None:
        print(
            f"  not validated: the rest of the config against prime-rl's schema "
            f"(no prime-rl environment at {prime_rl.checkout}); "
            "after `bash scripts/setup-prime-rl.sh`, `uv run rl @ FILE --dry-run` checks it with prime-rl itself"
        )


def _smoke_config(run: RunConfig, out_dir: Path) -> Path:
    """A copy of the config for a smoke run: a few tasks per HarborEnvironment source, a few steps.

    A file rather than `--key value` overrides: prime-rl replaces lists (the sources) whole."""
    run.data["max_steps"] = SMOKE_STEPS
    for source in run.harbor_sources():
        source.env["taskset"]["limit"] = SMOKE_TASKS  # the source's own table inside run.data
    out = out_dir / run.path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tomli_w.dumps(run.data).encode())
    return out


def _report(problems: list[Problem], heading: str) -> None:
    print(heading, file=sys.stderr)
    for problem in problems:
        print(f"  ✗ {problem}", file=sys.stderr)


def _evaluate(run: RunConfig, args: argparse.Namespace, root: Path) -> int:
    from verifiers.v1.utils.loaders import resolve_env_config

    from harbor_env.launcher.evaluate import evaluate, results_table

    sources = run.harbor_sources()
    source = next((s for s in sources if s.kind == "eval"), sources[0])
    config = resolve_env_config(source.env)
    job_name = args.job_name or dt.datetime.now().strftime("%Y-%m-%d__%H-%M-%S")
    job_dir = (args.jobs_dir or root / "outputs" / "eval") / job_name
    print(f"evaluating {args.model or run.model} at {args.base_url} on source '{source.name}' → {job_dir}")
    rows = asyncio.run(
        evaluate(
            config,
            base_url=args.base_url,
            model=args.model or run.model,
            api_key_var=args.api_key_var,
            job_dir=job_dir,
            rollouts_per_task=args.rollouts,
            concurrency=args.concurrency,
        )
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
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        action="append",
        help="prime-rl run config (TOML), e.g. configs/harbor_8b.toml; repeat to layer files as `rl @ a @ b` does",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="check, print the plan and run prime-rl's own dry run; train nothing"
    )
    mode.add_argument(
        "--test", action="store_true", help=f"smoke run: {SMOKE_TASKS} tasks per source, {SMOKE_STEPS} steps"
    )
    mode.add_argument("--eval", action="store_true", help="rollouts only, no training, against --base-url")
    parser.add_argument("--base-url", default="http://localhost:8000/v1", help="OpenAI-compatible server for --eval")
    parser.add_argument("--model", help="model name for --eval (default: the config's model.name)")
    parser.add_argument(
        "--api-key-var", default="OPENAI_API_KEY", help="environment variable holding the --eval server's key"
    )
    parser.add_argument("--rollouts", type=int, default=1, help="--eval: rollouts per task")
    parser.add_argument("--concurrency", type=int, default=4, help="--eval: episodes at once")
    parser.add_argument(
        "--jobs-dir", type=Path, help="--eval: where the Harbor job folder goes (default: outputs/eval)"
    )
    parser.add_argument("--job-name", help="--eval: job folder name (default: a timestamp)")
    parser.add_argument("--prime-rl", type=Path, help="prime-rl checkout (default: the submodule, prime-rl/)")
    return parser


def _prime_rl_dry_run(prime_rl: PrimeRL, root: Path, command: list[str]) -> int:
    """prime-rl's own `rl --dry-run`: it validates the whole config and writes the per-process configs."""
    print(f"prime-rl's own dry run: {' '.join(command)} --dry-run", flush=True)
    code = subprocess.run([*command, "--dry-run"], cwd=root, env=prime_rl.environment(root)).returncode
    verdict = "accepted the config" if code == 0 else f"rejected the config (exit {code}): see its output above"
    print(f"prime-rl's own dry run {verdict}", file=sys.stdout if code == 0 else sys.stderr)
    return code


def _hand_over(prime_rl: PrimeRL, root: Path, command: list[str]) -> int:
    """Become prime-rl's `rl` (exec: signals, exit code and the terminal are prime-rl's)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(root)
    os.execve(command[0], command, prime_rl.environment(root))
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if os.environ.get(HANDOVER_MARK):
        print(
            f"error: harbor-env's launcher was started by its own handover to prime-rl ({HANDOVER_MARK} is set): "
            "a harbor-env command stands in for a prime-rl one on prime-rl's PATH; "
            "fix: cd prime-rl && uv sync --all-extras --reinstall-package prime-rl",
            file=sys.stderr,
        )
        return 2
    root = project_root()
    _load_dotenv(root)
    try:
        run = RunConfig.load([c.resolve() for c in args.config], overrides)
        plans, problems = _check_config(run)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        _report(problems, f"error: {' @ '.join(map(str, args.config))} is not valid:")
        return 2
    if args.eval:
        return _evaluate(run, args, root)
    prime_rl = PrimeRL((args.prime_rl or root / "prime-rl").resolve())
    configs = [_smoke_config(run, root / "outputs" / "smoke")] if args.test else run.paths
    command = prime_rl.command(configs, [] if args.test else overrides)  # a smoke config holds the overrides
    checkout_problems = prime_rl.problems()
    stack = None if checkout_problems else prime_rl.probe(root, sorted({p.environment for p in plans}))
    host = checkout_problems + (stack.problems if stack else []) + check_gpus(run) + check_container_engines(plans)
    if args.dry_run:
        _print_plan(run, plans, root, prime_rl, stack, command)
        if host:
            _report(host, "not ready to run on this host:")
        return 0 if checkout_problems else _prime_rl_dry_run(prime_rl, root, command)
    if host:
        _report(host, "error: cannot start the run on this host:")
        return 2
    return _hand_over(prime_rl, root, command)


def rl_main() -> int:
    """`uv run rl @ configs/x.toml [@ more.toml] [--a.b value ...] [--dry-run]`.

    prime-rl's own command line, checked first."""
    argv = sys.argv[1:]
    files = [argv[i + 1] for i, a in enumerate(argv) if a == "@" and i + 1 < len(argv)]
    if not files or argv.count("@") != len(files):
        print(
            "usage: uv run rl @ configs/harbor_8b.toml [@ more.toml] [--key.path value ...] [--dry-run]",
            file=sys.stderr,
        )
        return 2
    rest = [a for i, a in enumerate(argv) if a != "@" and (i == 0 or argv[i - 1] != "@")]
    flags = ["--dry-run"] if "--dry-run" in rest else []
    overrides = [a for a in rest if a != "--dry-run"]
    return main([arg for f in files for arg in ("--config", f)] + [*flags, "--", *overrides])
