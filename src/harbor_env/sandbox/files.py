"""The local sandbox's files: Harbor's upload, download and empty-dirs, on host paths where it can.

Paths the host reaches (the private root, Harbor's log mounts) are copied directly, with no
command in the sandbox; others (a quota's tmpfs root, something the agent planted on the way)
go through tar inside the sandbox, so links the agent left are never followed on the host.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

from harbor.environments.base import BaseEnvironment, ExecResult

from harbor_env.sandbox.host_files import empty_host_dir, extract_within, same_dir

# A folder ($1) as a tar stream on stdout, from inside the sandbox: sparse files as their data
# only where the sandbox's tar can (GNU tar), so a 2 GB file of holes the agent made in 64 MB of
# quota never becomes 2 GB on the host's disk or in memory.
_ARCHIVE = r"""
if tar --sparse -cf /dev/null -T /dev/null 2>/dev/null; then exec tar --sparse -C "$1" -cf - .; fi
exec tar -C "$1" -cf - .
"""


def archive_command(directory: str) -> list[str]:
    """The command (run in the sandbox) that writes `directory` as a tar stream to stdout."""
    return ["/bin/sh", "-c", _ARCHIVE, "archive", directory]


class SandboxFiles(BaseEnvironment):
    """File transfer for LocalSandbox, which provides `_host` (a sandbox path's host path, or
    None) and `_run` (a command in the sandbox)."""

    def _host(self, sandbox_path: str, *, for_write: bool) -> Path | None:
        raise NotImplementedError

    async def _run(
        self, command: list[str], *, user: str | int | None, stdin: bytes | IO[bytes] | None = None
    ) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    async def upload_file(self, source_path: Path | str, target_path: str) -> None:
        host = self._host(target_path, for_write=True)
        if host is not None and not host.is_dir():
            host.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.copy2, source_path, host)
            return
        await self._upload_through_sandbox(Path(source_path), target_path, as_file=True)

    async def upload_dir(self, source_dir: Path | str, target_dir: str) -> None:
        host = self._host(target_dir, for_write=True)
        if host is not None:
            if not same_dir(host, Path(source_dir)):  # a bound log directory is already there
                await asyncio.to_thread(shutil.copytree, source_dir, host, symlinks=True, dirs_exist_ok=True)
            return
        await self._upload_through_sandbox(Path(source_dir), target_dir, as_file=False)

    async def download_file(self, source_path: str, target_path: Path | str) -> None:
        target = Path(target_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        host = self._host(source_path, for_write=False)
        if host is not None and host.is_file():
            await asyncio.to_thread(shutil.copy2, host, target)
            return
        code, stdout, stderr = await self._run(["/bin/cat", "--", source_path], user=None)
        if code != 0:
            raise FileNotFoundError(
                f"local sandbox: cannot read {source_path}: {stderr.decode(errors='replace').strip()}"
            )
        target.write_bytes(stdout)

    async def empty_dirs(self, dirs: Any, *, chmod: bool = True) -> ExecResult | None:
        """Harbor's "exist and be empty" for each directory, through host paths where the host
        reaches them (Harbor's log mounts, the private root): no command in the sandbox, which
        Harbor runs twice per episode. Anything else (a symlink the agent planted on the way)
        goes through the sandbox as in Harbor."""
        through_sandbox = []
        for directory in dirs:
            host = self._host(str(directory), for_write=True)
            if host is None or host.is_symlink() or (host.exists() and not host.is_dir()):
                through_sandbox.append(directory)
                continue
            await asyncio.to_thread(empty_host_dir, host, chmod)
        return await super().empty_dirs(through_sandbox, chmod=chmod) if through_sandbox else None

    async def download_dir(self, source_dir: str, target_dir: Path | str) -> None:
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        host = self._host(source_dir, for_write=False)
        if host is not None and host.is_dir():
            if not same_dir(host, target):  # a bound log directory is already there
                await asyncio.to_thread(shutil.copytree, host, target, symlinks=True, dirs_exist_ok=True)
            return
        code, stdout, stderr = await self._run(archive_command(source_dir), user=None)
        if code != 0:
            raise FileNotFoundError(
                f"local sandbox: cannot read {source_dir}: {stderr.decode(errors='replace').strip()}"
            )
        # What the agent left there (a link out of the folder, say) is skipped, not followed.
        await asyncio.to_thread(extract_within, io.BytesIO(stdout), target)

    async def _upload_through_sandbox(self, source: Path, target: str, *, as_file: bool) -> None:
        """Copy into a path the host cannot write directly, with tar inside the sandbox. The
        archive is a file on the host, not memory: Harbor uploads the agent's logs back, and a
        file of 100 GB of holes there must cost its data only (GNU tar's --sparse)."""
        with tempfile.TemporaryFile() as archive:
            await asyncio.to_thread(_write_archive, source, archive, posixpath.basename(target) if as_file else None)
            archive.seek(0)
            directory = posixpath.dirname(target) if as_file else target
            code, _, stderr = await self._run(
                ["/bin/sh", "-c", 'mkdir -p -- "$0" && tar -C "$0" -xf -', directory],
                user=None,
                stdin=archive,
            )
        if code != 0:
            raise PermissionError(f"local sandbox: cannot write {target}: {stderr.decode(errors='replace').strip()}")


def _write_archive(source: Path, out: IO[bytes], file_name: str | None) -> None:
    """`source` (a folder, or a file stored as `file_name`) as a tar archive into `out`: by the
    host's GNU tar where there is one (sparse files as their data), else by tarfile."""
    tar = shutil.which("tar")
    if tar is not None and file_name is None:
        subprocess.run([tar, "--sparse", "-C", str(source), "-cf", "-", "."], stdout=out, check=True)
        return
    with tarfile.open(fileobj=out, mode="w") as archive:
        archive.add(source, arcname=file_name or ".")
