"""The README and docs/: every shell command runs here or is marked with what it needs, links
resolve, and no fact is written twice. The conventions: docs/development.md, "The docs"."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 250

SHELLS = {"bash", "sh", "shell", "console"}
# What a block that is not run here needs (docs/development.md lists them for writers).
NEEDS = {"gpu", "network", "cloud", "docker", "root", "prime-rl", "long", "ci"}
MARKING = re.compile(r"<!--\s*(.*?)\s*-->")
# prime-rl's inference server, as the docs name it; runnable blocks get the fake one there.
INFERENCE_URL = "http://localhost:8000/v1"
BLOCK_TIMEOUT_SEC = 300
# Paths in backticks that look like the repository's but are not: written by a command
# (bench/run.py's report), or inside a task (its tests) or another repository (Django's runner).
NOT_REPOSITORY_PATHS = {"bench/results/results.md", "tests/test.sh", "tests/runtests.py"}
REPO_PATH = re.compile(r"^(?:configs|scripts|bench|src|tests|docs|rl-command|datasets|\.ci)/[\w./-]*$")
SENTENCE_MIN_CHARS = 80


@dataclass(frozen=True)
class Block:
    """A fenced code block: where its fence opens, its language, its text, the marking above it."""

    page: Path
    line: int
    language: str
    text: str
    marking: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def split_page(page: Path) -> tuple[list[Block], str]:
    """The page's fenced blocks, and its prose (every line outside them)."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = page.read_text().split("\n")
    fence: str | None = None
    start, language, body = 0, "", []
    for number, line in enumerate(lines, 1):
        if fence is None:
            opened = re.match(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)", line)
            if opened:
                fence, start, language, body = opened[1], number, opened[2], []
            else:
                prose.append(line)
        elif line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            above = lines[start - 2].strip() if start > 1 else ""
            marked = MARKING.fullmatch(above)
            blocks.append(Block(page, start, language, "\n".join(body) + "\n", marked[1] if marked else None))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"{page.relative_to(REPO)}:{start}: a fence that never closes"
    return blocks, "\n".join(prose)


SPLIT = {page: split_page(page) for page in PAGES}
BLOCKS = [block for page in PAGES for block in SPLIT[page][0]]


def commands(block: Block) -> list[str]:
    """The block's command lines: continuations joined, comments and blank lines dropped."""
    joined = block.text.replace("\\\n", " ")
    lines = (re.sub(r"(^|\s+)#.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line]


def marking_problems(block: Block) -> list[str]:
    if not block.language:
        return [f"{block.where}: a fenced block without a language (```bash, ```toml, ```text, ...)"]
    if block.language not in SHELLS:
        return []
    if block.marking is None:
        return [
            f"{block.where}: a shell block without a marking on the line above it: <!-- runnable -->, "
            "<!-- tested: tests/test_x.py -->, or <!-- needs: KIND ... --> (docs/development.md)"
        ]
    if block.marking == "runnable":
        return []
    kind, _, rest = block.marking.partition(":")
    if kind == "tested":
        test = REPO / rest.strip()
        if not test.is_file():
            return [f"{block.where}: tested by {rest.strip()}, which does not exist"]
        if str(block.page.relative_to(REPO)) not in test.read_text():
            return [f"{block.where}: {rest.strip()} does not name {block.page.relative_to(REPO)}, the page it runs"]
        return []
    if kind != "needs" or not rest.split():
        return [f"{block.where}: unknown marking {block.marking!r}"]
    problems = [
        f"{block.where}: unknown need {need!r} (one of {sorted(NEEDS)})" for need in rest.split() if need not in NEEDS
    ]
    if "ci" in rest.split():
        ci = {line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()}
        problems += [
            f"{block.where}: marked ci, but .ci/run does not run {c!r}" for c in commands(block) if c not in ci
        ]
    return problems


def test_every_shell_block_is_run_or_marked_with_what_it_needs() -> None:
    problems = [problem for block in BLOCKS for problem in marking_problems(block)]
    assert not problems, "\n".join(problems)


def test_the_markings_are_checked() -> None:
    """The checker itself: each kind of mistake is found, and named by file and line."""
    block = Block(README, 7, "bash", "uv run pytest\nbash scripts/not-in-ci.sh  # a comment\n", "needs: ci gpus")
    assert marking_problems(block) == [
        "README.md:7: unknown need 'gpus' (one of ['ci', 'cloud', 'docker', 'gpu', 'long', 'network', 'prime-rl', 'root'])",
        "README.md:7: marked ci, but .ci/run does not run 'bash scripts/not-in-ci.sh'",
    ]
    assert "without a marking" in marking_problems(Block(README, 3, "sh", "ls\n", None))[0]
    assert "without a language" in marking_problems(Block(README, 3, "", "ls\n", None))[0]
    assert "does not name README.md" in marking_problems(Block(README, 3, "bash", "", "tested: tests/test_cli.py"))[0]
    assert marking_problems(Block(README, 3, "bash", "", "runnable")) == []
    assert marking_problems(Block(README, 3, "python", "", None)) == []
    assert module_exists("src.train") and module_exists("harbor_env.datasets.sft_export")
    assert not module_exists("harbor_env.no_such_module")


def test_every_toml_block_parses() -> None:
    problems = []
    for block in BLOCKS:
        if block.language == "toml":
            try:
                tomllib.loads(block.text)
            except tomllib.TOMLDecodeError as error:
                problems.append(f"{block.where}: {error}")
    assert not problems, "\n".join(problems)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercased, without punctuation, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    prose = SPLIT[page][1] if page in SPLIT else split_page(page)[1]
    for line in prose.splitlines():
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading[1])
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(page: Path) -> list[str]:
    """The targets of the page's links and images, code spans left out."""
    prose = re.sub(r"<!--.*?-->", "", re.sub(r"`[^`\n]*`", "", SPLIT[page][1]), flags=re.DOTALL)
    return re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)


def test_links_between_the_pages_resolve() -> None:
    problems = []
    for page in PAGES:
        for target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(REPO)}: link {target}"
            if not resolved.exists():
                problems.append(f"{where}: no such file")
            elif anchor and resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not markdown")
            elif anchor and anchor not in anchors(resolved):
                problems.append(f"{where}: {resolved.relative_to(REPO)} has no heading #{anchor}")
    assert not problems, "\n".join(problems)


def test_the_link_checker_follows_githubs_anchors() -> None:
    assert slug("The environment: `harbor-env`") == "the-environment-harbor-env"
    assert slug("prime-rl's orchestrator on CPU: the integration check") == (
        "prime-rls-orchestrator-on-cpu-the-integration-check"
    )
    assert slug("Harbor jobs → SFT data") == "harbor-jobs--sft-data"
    assert slug("The agent cannot reach its verifier (`verifier_isolation.py`)") == (
        "the-agent-cannot-reach-its-verifier-verifier_isolationpy"
    )
    assert {"scaling-out", "configs"} <= anchors(REPO / "docs" / "running.md") | anchors(REPO / "docs" / "configs.md")


def module_exists(name: str) -> bool:
    """Whether `python -m name` finds this checkout's module (harbor_env lives in src/)."""
    path = Path(*name.split("."))
    return any(
        (root / path).with_suffix(".py").is_file() or (root / path / "__main__.py").is_file()
        for root in (REPO, REPO / "src")
    )


def test_repository_paths_and_modules_named_in_the_pages_exist() -> None:
    """Inline commands and paths too: every `configs/...`, `scripts/...` (...) path exists, and
    every `python -m` of this project's modules names one that does."""
    problems = []
    for page in PAGES:
        blocks, prose = SPLIT[page]
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"<!--.*?-->", "", prose))
        for span in spans:
            for token in span.split():
                token = token.strip(",.;:()'\"")
                if REPO_PATH.match(token) and token not in NOT_REPOSITORY_PATHS and not (REPO / token).exists():
                    problems.append(f"{page.relative_to(REPO)}: `{span}` names {token}, which does not exist")
        shell = spans + [block.text for block in blocks if block.language in SHELLS]
        for module in re.findall(r"python3? -m ((?:harbor_env|src)(?:\.\w+)*)", "\n".join(shell)):
            if not module_exists(module):
                problems.append(f"{page.relative_to(REPO)}: `python -m {module}`: no such module")
    assert not problems, "\n".join(problems)


def sentences(page: Path) -> list[str]:
    """The page's prose as sentences (a table row counts as one), white space folded."""
    prose = re.sub(r"<!--.*?-->", "", SPLIT[page][1], flags=re.DOTALL)
    found = []
    for paragraph in re.split(r"\n\s*\n", prose):
        rows = [line for line in paragraph.splitlines() if line.lstrip().startswith("|")]
        found += [" ".join(row.split()) for row in rows]
        text = " ".join(line for line in paragraph.splitlines() if not line.lstrip().startswith("|"))
        found += [" ".join(s.split()) for s in re.split(r"(?<=[.!?:;])\s+", text)]
    return [s for s in found if len(s) >= SENTENCE_MIN_CHARS and not set(s) <= set("|-: ")]


def test_no_sentence_stands_in_two_places() -> None:
    """A fact lives on one page; the others link to it (so the README does not drift from docs/).
    Within a page, a table's header may come again."""
    places: dict[str, list[str]] = {}
    for page in PAGES:
        for sentence in set(sentences(page)):
            places.setdefault(sentence, []).append(str(page.relative_to(REPO)))
    repeated = {s: where for s, where in places.items() if len(where) > 1}
    assert not repeated, "\n".join(f"{', '.join(where)}: {s[:120]}" for s, where in repeated.items())


def test_the_readme_is_a_front_door_to_every_page() -> None:
    readme = README.read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES, "the README grows: move the detail to a page of docs/"
    # The two commands, as CI and newcomers run them.
    shown = [commands(b) for b in SPLIT[README][0] if b.language == "bash"]
    assert ["uv run rl @ configs/harbor_8b.toml"] in shown and ["uv run pytest"] in shown
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    assert not [p.name for p in PAGES[1:] if p not in linked], "pages the README does not link to"
    for page in PAGES[1:]:
        title, blank, who = page.read_text().split("\n")[:3]
        assert title.startswith("# ") and not blank and who.startswith("For "), f"{page.name}: who it is for, first"


# ---------------------------------------------------------------------------- the runnable blocks


def uv_project_environment() -> Path:
    return Path(os.environ.get("UV_PROJECT_ENVIRONMENT") or REPO / ".venv").resolve()


# The blocks say `uv run`: the project's own environment, the lock's stack. On the other stacks
# (scripts/test-stack.sh) this one is not the test's, so the blocks would test the lock's again.
ON_THE_LOCKS_STACK = Path(sys.prefix).resolve() == uv_project_environment() and shutil.which("uv") is not None
RUNNABLE_PAGES = [page for page in PAGES if any(b.marking == "runnable" for b in SPLIT[page][0])]


def scratch_checkout(into: Path) -> Path:
    """The checkout as a fresh clone has it, with the working tree's changes: tracked files and
    untracked ones git does not ignore (no .env, no venvs, no outputs); submodules empty."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True
    )
    if listing.returncode != 0:
        pytest.skip(f"not a git checkout: {listing.stderr.decode().strip()}")
    listed = listing.stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = REPO / name, into / name
        if source.is_dir() and not source.is_symlink():  # a submodule
            target.mkdir(parents=True, exist_ok=True)
        elif source.exists() or source.is_symlink():  # not deleted in the working tree
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return into


@contextlib.contextmanager
def inference_server(tokenizer: Path, needed: bool) -> Iterator[str | None]:
    """The fake inference server, playing a policy that solves the sample tasks, if `needed`."""
    if not needed:
        yield None
        return
    from harbor_env.testing.inference import FakeInferenceServer
    from harbor_env.testing.policies import SolveEachTask
    from harbor_env.testing.tasks import SAMPLE_TASKS

    policy = SolveEachTask(SAMPLE_TASKS, wait_until_done=True)
    with FakeInferenceServer(tokenizer, policy, model="Qwen/Qwen3-8B") as server:
        yield server.base_url


@pytest.mark.skipif(not ON_THE_LOCKS_STACK, reason="the docs' `uv run` commands run on the lock's stack")
@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_the_runnable_blocks_run(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    runnable = [block for block in SPLIT[page][0] if block.marking == "runnable"]
    checkout = scratch_checkout(tmp_path / "checkout")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": sys.prefix,  # this test's environment, as it is: no sync, no network
        "VIRTUAL_ENV": sys.prefix,
        "UV_NO_SYNC": "1",
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "CUDA_VISIBLE_DEVICES": "",
        "HARBOR_ENV_CACHE": str(tmp_path / "cache"),
        "HARBOR_ENV_SANDBOX_DIR": str(tmp_path / "sandboxes"),
    }
    for name in ("UV_LOCKED", "UV_FROZEN"):  # CI's; no sync implies the lock is not read
        env.pop(name, None)
    needed = any(INFERENCE_URL in block.text for block in runnable)
    tokenizer = request.getfixturevalue("tokenizer") if needed else Path()
    with inference_server(tokenizer, needed) as url:
        for block in runnable:
            script = block.text.replace(INFERENCE_URL, url) if url else block.text
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_SEC,
            )
            assert done.returncode == 0, (
                f"{block.where} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
