"""Lets prime-rl's orchestrator import on a machine without a GPU stack (installed by build.sh
as a module plus a .pth file that imports it at interpreter start; prime-rl's files are not
changed).

Why: `prime_rl/orchestrator/orchestrator.py` imports `prime_rl.trainer.model` (for
`setup_tokenizer` only) and `prime_rl.transports.weights.nixl.model_express`. Through their
packages' `__init__`s both pull in the trainer's model code: torchtitan (no usable PyPI
release), ring_flash_attn -> flash_attn, fla, tilelang, dion, none of which installs without
CUDA. A stand-in `flash_attn` breaks transformers, so instead exactly three module names are
served differently:

- `prime_rl.trainer.model`: a module holding only the real `setup_tokenizer`, compiled from the
  real file's source (so prime-rl's own code runs, not a copy);
- `prime_rl.transports.weights` and `prime_rl.transports.weights.nixl`: the real packages
  (their real `__path__`, so `...nixl.model_express` and `...weights.filesystem` load from
  prime-rl's files) with their `__init__` not executed.

Every other import is untouched; the env server does not need this at all.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

_TOKENIZER_MODULE = "prime_rl.trainer.model"
_BARE_PACKAGES = ("prime_rl.transports.weights", "prime_rl.transports.weights.nixl")


def _real_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec the normal finders give `name` (this finder left out)."""
    parent = sys.modules.get(name.rpartition(".")[0])
    path = getattr(parent, "__path__", None)
    return importlib.machinery.PathFinder.find_spec(name, path)


class _TokenizerOnly(importlib.abc.Loader):
    def __init__(self, source_file: str) -> None:
        self.source_file = source_file

    def create_module(self, spec):  # default module object
        return None

    def exec_module(self, module) -> None:
        tree = ast.parse(Path(self.source_file).read_text(), self.source_file)
        (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "setup_tokenizer"]
        from prime_rl.configs.trainer import TokenizerConfig
        from prime_rl.utils.logger import get_logger
        from transformers import AutoTokenizer
        from transformers.tokenization_utils import PreTrainedTokenizer

        module.__dict__.update(
            Path=Path,
            AutoTokenizer=AutoTokenizer,
            PreTrainedTokenizer=PreTrainedTokenizer,
            TokenizerConfig=TokenizerConfig,
            get_logger=get_logger,
        )
        exec(compile(ast.Module(body=[function], type_ignores=[]), self.source_file, "exec"), module.__dict__)


class _SkipInit(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:  # the package's __init__ is not run
        pass


class _CpuImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != _TOKENIZER_MODULE and name not in _BARE_PACKAGES:
            return None
        real = _real_spec(name)
        if real is None or real.origin is None:
            return None
        if name == _TOKENIZER_MODULE:
            return importlib.util.spec_from_loader(name, _TokenizerOnly(real.origin), origin=real.origin)
        spec = importlib.util.spec_from_loader(name, _SkipInit(), origin=real.origin, is_package=True)
        spec.submodule_search_locations = list(real.submodule_search_locations or [])
        return spec


if not any(isinstance(f, _CpuImports) for f in sys.meta_path):
    sys.meta_path.insert(0, _CpuImports())
