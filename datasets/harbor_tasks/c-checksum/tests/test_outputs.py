"""The agent's C source, built afresh by the tests with the image's tcc, computes zlib's Adler-32;
so does the binary the agent built. Inputs come from the tests, the expected values from zlib."""

import os
import subprocess
import tempfile
import zlib
from pathlib import Path

INPUTS = [b"", b"a", b"Wikipedia", bytes(range(256)) * 300, b"harbor-env " * 5000]


def check(binary: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        for i, data in enumerate(INPUTS):
            path = Path(scratch) / f"input{i}"
            path.write_bytes(data)
            out = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == f"{zlib.adler32(data):08x}", f"input {i}"


def test_source_builds_and_is_right():
    with tempfile.TemporaryDirectory() as scratch:
        binary = os.path.join(scratch, "adler")
        build = subprocess.run(["tcc", "-o", binary, "/app/src/adler.c"], capture_output=True, text=True, timeout=60)
        assert build.returncode == 0, build.stderr
        check(binary)


def test_built_binary_is_right():
    check("/app/adler")
