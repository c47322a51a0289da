"""The repositories SWE-style rows refer to: one bare clone per URL in the cache, the snapshot a
task is built from, and the check that a row's patches apply at its base commit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harbor_env.datasets.cache import locked
from harbor_env.errors import SweRowError


def git_output(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True
) -> str | None:
    """git's output; on failure SweRowError with git's message (None when not `check`)."""
    # Never prompt for credentials: a URL that needs them fails with git's message instead.
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
    )
    if result.returncode and check:
        raise SweRowError(f"git {args[0]} failed: {' '.join(result.stderr.split())[:300]}")
    return None if result.returncode else result.stdout.strip()


def repository_location(url: str) -> str:
    """`url` as git should see it: a local path (no scheme) made absolute, so that the clone's
    name does not depend on the working directory."""
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return url
    return str(Path(url).expanduser().resolve())


class Mirrors:
    """The bare clones in `root`, one per URL: cloned once, fetched again when a row's commit is
    newer than the clone; with `refresh`, fetched once more in this conversion."""

    def __init__(self, root: Path, refresh: bool = False) -> None:
        self.root = root
        self.refresh = refresh
        self._fetched: set[Path] = set()

    def get(self, url: str, commit: str) -> Path:
        """The clone of `url`, holding `commit`."""
        url = repository_location(url)
        path = self.root / re.sub(r"[^A-Za-z0-9_.-]", "_", url)
        with locked(path):  # several sources and processes may share a repository
            if not path.exists():
                tmp = path.with_name(path.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                git_output("clone", "-q", "--bare", url, str(tmp))
                tmp.rename(path)
                self._fetched.add(path)
            elif path not in self._fetched and (self.refresh or not _has_commit(path, commit)):
                refs = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
                git_output("fetch", "-q", "--prune", "origin", *refs, cwd=path)
                self._fetched.add(path)
            if not _has_commit(path, commit):
                raise SweRowError(f"base_commit {commit} is not in {url}")
        return path


def _has_commit(repo: Path, commit: str) -> bool:
    found = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo, capture_output=True)
    return found.returncode == 0


def snapshot(repo: Path, commit: str, dest: Path) -> str:
    """The tree of `repo` at `commit` in `dest` as a fresh one-commit repository (so the agent
    cannot find the fix in later history); returns that commit's id."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    git_output("init", "-q", cwd=dest)
    git_output("add", "-A", cwd=dest)
    fixed = ["-c", "user.name=harbor-env", "-c", "user.email=harbor-env@localhost"]
    git_output(*fixed, "commit", "-q", "--no-gpg-sign", "-m", f"snapshot of {commit}", cwd=dest)
    return git_output("rev-parse", "HEAD", cwd=dest)


def patched_tree(repo: Path, commit: str, patch: str) -> str:
    """The tree of `commit` with `patch` applied; SweRowError with git's message when it does
    not apply. The patch goes into a scratch index, not a checkout: nothing is written but that
    index and the tree's objects, so a large repository costs no copy per row."""
    with tempfile.TemporaryDirectory(prefix="harbor-env-patch-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        patch_file = Path(scratch) / "row.patch"
        patch_file.write_text(patch)
        git_output("read-tree", commit, cwd=repo, env=env)
        git_output("apply", "--cached", "--whitespace=nowarn", str(patch_file), cwd=repo, env=env)
        return git_output("write-tree", cwd=repo, env=env)


def check_patches(repo: Path, commit: str, patches: dict[str, str]) -> None:
    """Apply each of `patches` (name -> text) to `commit` of `repo` on its own, as the task does
    (solve.sh applies the gold patch; test.sh puts the test patch's files back to base_commit
    first, so the test patch meets them as they are there); raise naming the first that fails."""
    for name, text in patches.items():
        try:
            patched_tree(repo, commit, text)
        except SweRowError as exc:
            detail = str(exc).split("failed: ", 1)[-1]
            raise SweRowError(f"the {name} does not apply at {commit[:12]} ({detail})") from None
