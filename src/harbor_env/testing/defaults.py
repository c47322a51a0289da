"""The process environment tests and benchmarks run in: offline, quiet, deterministic.

Call `apply_environment_defaults()` before importing verifiers or Harbor (pytest's conftest and
every bench script do, first thing): huggingface_hub and litellm read these variables at import.
Env servers started afterwards inherit them. Values already set by the caller win.
"""

from __future__ import annotations

import os

# The model key the env servers of tests and benchmarks get (they inherit os.environ): a fake
# server's key, never a real one; tests check that it is written nowhere.
INFERENCE_KEY_VAR = "HARBOR_ENV_TEST_INFERENCE_KEY"
INFERENCE_KEY = "sk-inference-test-0123456789"

ENVIRONMENT_DEFAULTS = {
    INFERENCE_KEY_VAR: INFERENCE_KEY,
    "HF_HUB_OFFLINE": "1",  # tokenizers are built locally (harbor_env.testing.tokenizer)
    "TOKENIZERS_PARALLELISM": "false",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price-list download at import
    "HARBOR_TELEMETRY": "0",  # Harbor's Job would post a job-finished event
    # The local sandbox runs tasks on the host's root unless a test asks for image mode (the
    # default elsewhere; tests/test_image_mode.py): the suite's tasks find what their RUN steps
    # install on this host, and need no image tool or build.
    "HARBOR_ENV_IMAGE_MODE": "host",
}


def apply_environment_defaults() -> None:
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
