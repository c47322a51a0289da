#!/usr/bin/env bash
# prime-rl's real orchestrator and env server train on harbor-env episodes, on this CPU machine:
# builds (once, cached) prime-rl's CPU environment from the pinned sources, then runs
# tests/test_prime_rl_orchestrator.py with its Python (the main suite skips that test).
# harbor-env reaches prime-rl's processes through PYTHONPATH=src: it is not installed there,
# so prime-rl's own verifiers, harbor, renderers and transformers stay as prime-rl pins them.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
env_dir="$(bash scripts/prime_rl_cpu/build.sh)"
echo "prime-rl CPU environment ready in $((SECONDS - started)) s: $env_dir"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false LITELLM_LOCAL_MODEL_COST_MAP=True
"$env_dir/venv/bin/python" -m pytest -p no:cacheprovider -m prime_rl tests/test_prime_rl_orchestrator.py \
  tests/unit/test_sft_config.py "$@"
echo "scripts/test-prime-rl.sh: $((SECONDS - started)) s in all"
