"""`python -m src.train --config FILE [--dry-run | --test | --eval] [-- prime-rl overrides]`.

See `harbor_env.launcher.cli` (and `--help`).
"""

import sys

from harbor_env.launcher.cli import main

if __name__ == "__main__":
    sys.exit(main())
