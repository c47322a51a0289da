"""The conversion command's template options: one per key of `SweTemplateConfig`, of the same
name (`test_command` -> `--test-command`), so that the command and `[env.taskset.swe]` say the
same things; the help is the key's own description."""

from __future__ import annotations

import argparse
import json
import types
import typing
from typing import Any

from harbor_env.datasets.swe_template import SweTemplateConfig

# Keys that are too long for a command line: set them in a config file.
_CONFIG_ONLY = {"instruction"}


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _argument(annotation: Any) -> dict[str, Any]:
    """argparse keywords for a field of this type."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # `X | None`: an X
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is list:
        return {"action": "append", "metavar": "LINE"}
    if origin is dict:
        return {"type": _json_object, "metavar": "JSON"}
    if origin is typing.Literal:
        return {"choices": typing.get_args(annotation)}
    return {"type": annotation}


def add_template_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("template ([env.taskset.swe]; unset options keep the preset's value)")
    for name, field in SweTemplateConfig.model_fields.items():
        if name in _CONFIG_ONLY:
            continue
        help_text = " ".join((field.description or "").split()).replace("%", "%%")
        # SUPPRESS: an option not given stays unset, so the preset's value stands.
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=argparse.SUPPRESS,
            help=help_text,
            **_argument(field.annotation),
        )


def template_from(args: argparse.Namespace) -> SweTemplateConfig:
    return SweTemplateConfig(
        **{name: getattr(args, name) for name in SweTemplateConfig.model_fields if hasattr(args, name)}
    )
