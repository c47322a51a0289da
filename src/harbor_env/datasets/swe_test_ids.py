"""SWE-bench's test names -> the labels a test runner takes.

SWE-bench's FAIL_TO_PASS / PASS_TO_PASS hold the names its log parsers read from the runner's
output, in that runner's spelling, not the label that runs the test:

- pytest node ids, `tests/test_x.py::TestY::test_z[a b-1]`: the label as written; spaces,
  brackets and parentheses in the parameters belong to the id;
- unittest / Django verbose names: `test_z (pkg.mod.TestY)` (Python < 3.11),
  `test_z (pkg.mod.TestY.test_z)` (3.11+), `First docstring line (pkg.mod.TestY.test_z)` (a
  test with a docstring, 3.11+), or a dotted `pkg.mod.TestY.test_z`; the label is the dotted
  path of the method;
- anything else (`as-is`): the name as written, e.g. sympy's bare function names.

A name that cannot become a label (a docstring with no path; a pytest id cut short at a space)
gives None: such a test cannot run, so the conversion refuses the row instead of scoring it 0.
"""

from __future__ import annotations

import re
from typing import Literal

TestIdStyle = Literal["as-is", "unittest", "pytest"]

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"
# The last parenthesised dotted path (a docstring may hold parentheses too), then any subtest
# description unittest appends: ` (x=1)` or ` [label]`.
_VERBOSE = re.compile(rf"^(?P<name>.+) \((?P<path>{_DOTTED})\)(?: \(.*\)| \[.*\])*$")


def unittest_label(name: str) -> str | None:
    """`module.Class.method` for a unittest-style name, None when the name does not say it."""
    name = name.strip()
    if re.fullmatch(_DOTTED, name):
        return name
    match = _VERBOSE.match(name)
    if not match:
        return None  # a docstring line alone: SWE-bench's parser kept no path
    described, path = match["name"], match["path"]
    # unittest only collects methods named test*; classes are TestX / XTests, never test_x.
    if path.rsplit(".", 1)[-1].startswith("test"):
        return path  # 3.11+: the path ends with the method (whatever the text before it)
    if described.isidentifier():
        return f"{path}.{described}"  # < 3.11: the path ends with the class
    return None  # a docstring and the class: the method is not named


def pytest_label(name: str) -> str | None:
    """A pytest node id as written; None when a parameter list was cut short (unbalanced brackets)."""
    name = name.strip()
    if not name or name.count("[") != name.count("]"):
        return None
    return name


def label_of(name: str, style: TestIdStyle) -> str | None:
    if style == "unittest":
        return unittest_label(name)
    if style == "pytest":
        return pytest_label(name)
    return name.strip() or None
