"""Tests that SWE-bench names by a docstring line alone -> their unittest labels, from the source.

unittest's verbose output puts a test's docstring (its first line) on the line that ends in
`... ok`, and SWE-bench's Django log parser keeps only that line: the row then names the test
`--squashed-name specifies the new migration's name.`, with no module, class or method. The
test is found by that line in the repository at base_commit with the test patch applied (the
tests it adds are named so too): the one test method whose docstring's first line it is.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from harbor_env.datasets.swe_repos import patched_tree
from harbor_env.errors import SweRowError


def docstring_labels(repo: Path, commit: str, test_patch: str, lines: list[str], test_root: str) -> dict[str, str]:
    """`module.Class.method` for each of `lines` that is the first docstring line of exactly
    one test method; module paths start below `test_root` (Django's runner: `tests`)."""
    try:
        tree = patched_tree(repo, commit, test_patch)
    except SweRowError:
        return {}  # the patch check names it
    grep = ["git", "grep", "-l", "-F", *(arg for line in lines for arg in ("-e", line)), tree, "--", "*.py"]
    found = subprocess.run(grep, cwd=repo, capture_output=True, text=True)
    candidates: dict[str, set[str]] = {line: set() for line in lines}
    for hit in found.stdout.splitlines():
        path = hit.split(":", 1)[1]
        source = subprocess.run(["git", "show", hit], cwd=repo, capture_output=True, text=True).stdout
        for first_line, label in _test_docstrings(source, _module(path, test_root)):
            if first_line in candidates:
                candidates[first_line].add(label)
    return {line: labels.pop() for line, labels in candidates.items() if len(labels) == 1}


def _module(path: str, test_root: str) -> str:
    root = test_root.strip("/")
    if root and path.startswith(root + "/"):
        path = path[len(root) + 1 :]
    return path.removesuffix(".py").replace("/", ".")


def _test_docstrings(source: str, module: str) -> list[tuple[str, str]]:
    """(first docstring line, label) of each test method of each class in `source`, as
    unittest's shortDescription() gives the line."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for method in node.body:
            if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) and method.name.startswith("test"):
                doc = ast.get_docstring(method)
                if doc and doc.strip():
                    found.append((doc.strip().split("\n")[0].strip(), f"{module}.{node.name}.{method.name}"))
    return found
