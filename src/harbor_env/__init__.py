"""harbor-env: Harbor tasks as a verifiers v1 environment for prime-rl."""

import os

# litellm (imported by Harbor) downloads a model price list at import time unless told
# not to; RL hosts are often offline and the list is irrelevant to a local model.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
