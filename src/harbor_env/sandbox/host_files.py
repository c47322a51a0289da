"""Host-side file operations on a sandbox's folders that must not trust what the agent left."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import IO


def same_dir(a: Path, b: Path) -> bool:
    """Whether two host paths are one directory (a bind-mounted log directory and its source)."""
    with contextlib.suppress(OSError):
        return a.samefile(b)
    return False


def extract_within(archive: Path | IO[bytes], target: Path) -> None:
    """Extract an archive the agent made (a file, or a stream of one): members tarfile's data
    filter refuses (absolute or escaping links, devices) are skipped, not raised."""

    def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, path)
        except tarfile.FilterError:
            return None

    with contextlib.suppress(tarfile.TarError):
        with tarfile.open(archive) if isinstance(archive, Path) else tarfile.open(fileobj=archive) as tar:
            tar.extractall(target, filter=safe)


def remove_tree(path: Path) -> None:
    """Remove `path` (never following links), however deep the agent made it: Python's rmtree
    recurses once per level and raises RecursionError past ~1000; then GNU rm, which does not
    recurse, finishes the job. Gone already is fine; what cannot be removed stays (logged by
    the caller's next look, never raised into an episode)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except (RecursionError, OSError):
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, check=False)


def empty_host_dir(directory: Path, chmod: bool) -> None:
    """Create `directory` or remove what is in it (never following symlinks); chmod 777 on request."""
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)
        else:
            child.unlink()
    if chmod:
        directory.chmod(0o777)
