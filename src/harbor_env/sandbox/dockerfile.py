"""Read the parts of a task's Dockerfile that a sandbox without an image can apply.

The local sandbox has no image builder. It applies what only describes the file system
layout and environment (WORKDIR, ENV, ARG substitution, COPY/ADD of files from the build
context) and reports everything else, so a user knows when a task really needs its image.
"""

from __future__ import annotations

import glob
import json
import posixpath
import re
import shlex
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from harbor_env.errors import DockerfileError, LocalSandboxError

# Instructions that change nothing an exec inside the sandbox could observe.
_METADATA_INSTRUCTIONS = {
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "CMD",
    "ENTRYPOINT",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "SHELL",
}
# The PATH Docker gives a container whose image sets none: what `$PATH` means in an ENV line.
DOCKER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HEREDOC = re.compile(r"<<-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class CopyStep:
    """One COPY/ADD of local files: sources relative to the build context."""

    sources: tuple[str, ...]
    destination: str  # absolute path inside the sandbox
    destination_is_dir: bool  # written with a trailing slash, or several sources
    extract_archives: bool  # ADD unpacks local tar archives
    line: int


@dataclass
class ImageLayout:
    """What the local sandbox reproduces of an image: its layout and environment."""

    base_image: str | None = None
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    copies: list[CopyStep] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)  # "RUN (line 3)", ...


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuation lines, drop comments, skip heredoc bodies."""
    lines = text.splitlines()
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        start = i
        raw = lines[i].strip()
        i += 1
        if not raw or raw.startswith("#"):
            continue
        parts = [raw]
        while parts[-1].endswith("\\") and i < len(lines):
            parts[-1] = parts[-1][:-1]
            nxt = lines[i].strip()
            i += 1
            if nxt.startswith("#"):
                parts.append("")
                continue
            parts.append(nxt)
        logical = " ".join(p for p in parts if p).strip()
        heredoc = _HEREDOC.search(logical)
        if heredoc and logical.split(None, 1)[0].upper() in {"RUN", "COPY", "ADD"}:
            terminator = heredoc.group(1)
            while i < len(lines) and lines[i].strip() != terminator:
                i += 1
            i += 1
        out.append((start + 1, logical))
    return out


def _substitute(value: str, variables: dict[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2)
        found = variables.get(name)
        if found:
            return found
        return default if default is not None else ""

    return _VARIABLE.sub(repl, value)


def _split_arguments(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            values = json.loads(rest)
        except json.JSONDecodeError:
            values = None
        if isinstance(values, list) and all(isinstance(v, str) for v in values):
            return values
    return shlex.split(rest)


def _docker_words(text: str, variables: dict[str, str], *, split: bool = True) -> list[str]:
    """`text` as Docker's ENV reads it: quotes removed, `$VAR` / `${VAR}` / `${VAR:-default}`
    expanded outside single quotes only (`ENV B='a $X'` keeps `$X`, as Docker does), a
    backslash escaping the next character (in double quotes: only `"`, `$`, `\\`, `` ` ``).
    Unquoted blanks separate words when `split`, else they are kept (legacy `ENV KEY value`)."""
    words: list[str] = []
    word: list[str] = []
    started = False
    i, n = 0, len(text)

    def expand_at(position: int) -> tuple[str, int]:
        match = _VARIABLE.match(text, position)
        if match is None:
            return "$", position + 1
        return _substitute(match.group(0), variables), match.end()

    while i < n:
        char = text[i]
        if char in " \t" and split:
            if started:
                words.append("".join(word))
                word, started = [], False
            i += 1
            continue
        started = True
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ValueError("no closing quotation")
            word.append(text[i + 1 : end])
            i = end + 1
        elif char == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"$\\`':
                    word.append(text[i + 1])
                    i += 2
                elif text[i] == "$":
                    expanded, i = expand_at(i)
                    word.append(expanded)
                else:
                    word.append(text[i])
                    i += 1
            if i >= n:
                raise ValueError("no closing quotation")
            i += 1
        elif char == "\\" and i + 1 < n:
            word.append(text[i + 1])
            i += 2
        elif char == "$":
            expanded, i = expand_at(i)
            word.append(expanded)
        else:
            word.append(char)
            i += 1
    if started:
        words.append("".join(word))
    return words


def _parse_env(rest: str, variables: dict[str, str]) -> dict[str, str]:
    key, _, value = rest.partition(" ")
    if "=" not in key:
        # Legacy form: ENV KEY value with spaces (one value, blanks kept).
        return {key.strip(): "".join(_docker_words(value.strip(), variables, split=False))}
    pairs: dict[str, str] = {}
    for token in _docker_words(rest, variables):
        key, sep, value = token.partition("=")
        if sep:
            pairs[key] = value
    return pairs


def parse_dockerfile(path: Path) -> ImageLayout:
    """Parse the final stage of a Dockerfile into an :class:`ImageLayout`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DockerfileError(f"{path}: cannot read the Dockerfile ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DockerfileError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); is it really the Dockerfile?"
        ) from None

    layout = ImageLayout()
    # Docker expands `$PATH` in ENV to the image's PATH (`ENV PATH=/app/bin:$PATH`).
    variables: dict[str, str] = {"PATH": DOCKER_DEFAULT_PATH}
    stages = 0
    for line_no, logical in _logical_lines(text):
        instruction, _, rest = logical.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        try:
            if instruction == "FROM":
                # A later stage starts from scratch; only the last one is the image.
                stages += 1
                layout = ImageLayout(base_image=_substitute(rest.split()[0], variables) if rest else None)
                continue
            if instruction == "ARG":
                for token in shlex.split(rest):
                    key, _, default = token.partition("=")
                    variables.setdefault(key, default)
            elif instruction == "ENV":
                pairs = _parse_env(rest, {**variables, **layout.env})
                layout.env.update(pairs)
                variables.update(pairs)
            elif instruction == "WORKDIR":
                target = _substitute(rest.strip('"'), {**variables, **layout.env})
                layout.workdir = posixpath.normpath(posixpath.join(layout.workdir or "/", target))
            elif instruction in {"COPY", "ADD"}:
                layout_copy = _parse_copy(instruction, rest, line_no, layout, {**variables, **layout.env})
                if layout_copy is None:
                    layout.not_applied.append(f"{instruction} {rest} (line {line_no})")
                else:
                    layout.copies.append(layout_copy)
            elif instruction in _METADATA_INSTRUCTIONS:
                continue
            else:
                layout.not_applied.append(f"{instruction} (line {line_no})")
        except ValueError as exc:
            raise DockerfileError(f"{path}:{line_no}: cannot parse {instruction}: {exc}") from exc
    if stages == 0:
        raise DockerfileError(f"{path}: no FROM instruction")
    return layout


def _parse_copy(
    instruction: str, rest: str, line_no: int, layout: ImageLayout, variables: dict[str, str]
) -> CopyStep | None:
    """A COPY/ADD of build-context files, or None when the sandbox cannot apply it."""
    args = _split_arguments(rest)
    flags = [a for a in args if a.startswith("--")]
    paths = [_substitute(a, variables) for a in args if not a.startswith("--")]
    if any(f.startswith(("--from", "--link", "--parents", "--exclude")) for f in flags):
        return None
    if len(paths) < 2:
        raise ValueError("needs at least one source and a destination")
    *sources, destination = paths
    if instruction == "ADD" and any(re.match(r"^[a-z]+://", s) or s.startswith("git@") for s in sources):
        return None
    destination_is_dir = destination.endswith("/") or len(sources) > 1 or any(glob.has_magic(s) for s in sources)
    absolute = posixpath.normpath(posixpath.join(layout.workdir or "/", destination))
    return CopyStep(
        sources=tuple(sources),
        destination=absolute,
        destination_is_dir=destination_is_dir,
        extract_archives=instruction == "ADD",
        line=line_no,
    )


def sandbox_layout(dockerfile: Path, *, on_image: bool, docker_image: str | None) -> tuple[ImageLayout, list[str]]:
    """The layout a sandbox applies, and the instructions it does not (for the user to hear of).

    `on_image`: the sandbox runs on the built image (a rootfs), where COPY and RUN already
    happened; otherwise on the host's root, which replaces FROM."""
    layout = parse_dockerfile(dockerfile) if dockerfile.is_file() else ImageLayout()
    if on_image:
        layout.copies = []
        return layout, []
    skipped = list(layout.not_applied)
    image = layout.base_image or docker_image
    if image:
        skipped.insert(0, f"FROM {image} (the host's root file system is used instead)")
    return layout, skipped


def apply_copy(step: CopyStep, *, context: Path, dockerfile: Path, root: Path) -> set[str]:
    """Copy a COPY/ADD step's files from the build `context` into the private `root`; return the
    sandbox paths it now owns. Sources outside the context or missing name the Dockerfile line."""
    context = context.resolve()
    owned: set[str] = set()
    for pattern in step.sources:
        relative = pattern.lstrip("/")
        matches = sorted(glob.glob(str(context / relative))) if glob.has_magic(pattern) else [str(context / relative)]
        for match in matches:
            source = Path(match)
            if not source.resolve().is_relative_to(context):
                raise LocalSandboxError(f"{dockerfile}:{step.line}: COPY source {pattern} is outside the build context")
            if not source.exists():
                raise LocalSandboxError(f"{dockerfile}:{step.line}: COPY source {pattern} not found in {context}")
            target_dir = root / step.destination.lstrip("/")
            if source.is_dir():
                shutil.copytree(source, target_dir, symlinks=True, dirs_exist_ok=True)
                owned |= {posixpath.join(step.destination, child.name) for child in source.iterdir()}
                owned.add(step.destination)
                continue
            if step.extract_archives and tarfile.is_tarfile(source):
                target_dir.mkdir(parents=True, exist_ok=True)
                with tarfile.open(source) as archive:
                    archive.extractall(target_dir, filter="data")
                    owned |= {posixpath.join(step.destination, n.split("/")[0]) for n in archive.getnames()}
                continue
            destination = posixpath.join(step.destination, source.name) if step.destination_is_dir else step.destination
            target = root / destination.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            owned.add(destination)
    return owned
