"""Checks the git history built in /app/site. Prints one line per check."""
import os
import subprocess
import sys

REPO = "/app/site"
ORIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "orig")
IDENTITY = "Site Bot <bot@example.com>"


def git(*args, check=True):
    proc = subprocess.run(["git", "-c", "safe.directory=*", "-C", REPO, *args],
                          capture_output=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode("utf-8", "replace")


def orig(name):
    with open(os.path.join(ORIG, name)) as fh:
        return fh.read()


def message(rev):
    return git("log", "-1", "--format=%B", rev).strip()


def parents(rev):
    return git("log", "-1", "--format=%P", rev).split()


def tree_files(rev):
    return sorted(git("ls-tree", "-r", "--name-only", rev).split("\n")[:-1])


def changes(base, rev):
    """Sorted list of 'STATUS<TAB>path' between two commits."""
    return sorted(line for line in git("diff", "--name-status", base, rev).split("\n") if line)


def blob(rev, path):
    return git("show", f"{rev}:{path}")


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def is_repository():
    top = git("rev-parse", "--show-toplevel").strip()
    assert os.path.realpath(top) == os.path.realpath(REPO), f"repository top-level is {top!r}"


@check
def main_checked_out():
    head = git("symbolic-ref", "HEAD").strip()
    assert head == "refs/heads/main", f"HEAD is {head!r}"


@check
def four_commits():
    count = git("rev-list", "--count", "main").strip()
    assert count == "4", f"main has {count} commits"


@check
def merge_commit():
    ps = parents("main")
    assert len(ps) == 2, f"main tip has {len(ps)} parent(s)"
    assert message("main") == "Merge branch 'feature/about'", f"merge message is {message('main')!r}"


@check
def initial_commit():
    root = git("rev-list", "--max-parents=0", "main").split()
    assert len(root) == 1, f"{len(root)} root commits"
    root = root[0]
    assert message(root) == "Initial commit", f"root message {message(root)!r}"
    assert tree_files(root) == [".gitignore", "index.html", "style.css"], f"root tree {tree_files(root)}"
    assert blob(root, ".gitignore").strip() == "*.log", f".gitignore is {blob(root, '.gitignore')!r}"
    assert blob(root, "index.html") == orig("index.html"), "index.html changed in commit 1"
    assert blob(root, "style.css") == orig("style.css"), "style.css changed in commit 1"


@check
def darken_commit():
    root = git("rev-list", "--max-parents=0", "main").split()[0]
    c3 = git("rev-parse", "main^1").strip()
    assert message(c3) == "Darken text color", f"first parent message {message(c3)!r}"
    assert parents(c3) == [root], "commit 3 must sit directly on commit 1"
    assert changes(root, c3) == ["M\tstyle.css"], f"commit 3 changes {changes(root, c3)}"
    expected = orig("style.css").replace("color: #333333;", "color: #111111;")
    assert blob(c3, "style.css") == expected, "style.css content in commit 3 is not as expected"


@check
def feature_branch():
    root = git("rev-list", "--max-parents=0", "main").split()[0]
    c2 = git("rev-parse", "main^2").strip()
    branch = git("rev-parse", "--verify", "refs/heads/feature/about").strip()
    assert branch == c2, "feature/about does not point at the merge's second parent"
    assert message(c2) == "Add about page", f"commit 2 message {message(c2)!r}"
    assert parents(c2) == [root], "commit 2 must sit directly on commit 1"
    assert changes(root, c2) == ["A\tabout.html"], f"commit 2 changes {changes(root, c2)}"
    assert blob(c2, "about.html") == orig("about.html"), "about.html content changed"


@check
def annotated_tag():
    root = git("rev-list", "--max-parents=0", "main").split()[0]
    kind = git("cat-file", "-t", "refs/tags/v1.0").strip()
    assert kind == "tag", f"v1.0 is a {kind!r} (must be an annotated tag)"
    target = git("rev-parse", "v1.0^{commit}").strip()
    assert target == root, "v1.0 does not point at commit 1"
    msg = git("tag", "-l", "--format=%(contents)", "v1.0").strip()
    assert msg == "First release", f"tag message {msg!r}"


@check
def identities():
    lines = git("log", "--all", "--format=%an <%ae>|%cn <%ce>").split("\n")
    bad = [line for line in lines if line and line != f"{IDENTITY}|{IDENTITY}"]
    assert not bad, f"unexpected author/committer: {bad[:3]}"


@check
def final_tree():
    assert tree_files("main") == [".gitignore", "about.html", "index.html", "style.css"], \
        f"main tree {tree_files('main')}"
    assert blob("main", "index.html") == orig("index.html")
    assert blob("main", "about.html") == orig("about.html")
    assert blob("main", "style.css") == orig("style.css").replace("color: #333333;", "color: #111111;")


@check
def clean_and_ignored():
    status = git("status", "--porcelain")
    assert status == "", f"working tree not clean: {status!r}"
    assert os.path.isfile(os.path.join(REPO, "debug.log")), "debug.log was removed from disk"
    ignored = subprocess.run(["git", "-c", "safe.directory=*", "-C", REPO, "check-ignore", "-q", "debug.log"]).returncode
    assert ignored == 0, "debug.log is not ignored"
    names = git("log", "--all", "--format=", "--name-only").split()
    assert "debug.log" not in names, "debug.log was committed"


def main():
    failed = 0
    for fn in CHECKS:
        try:
            fn()
            print(f"[PASS] {fn.__name__}")
        except Exception as exc:
            failed += 1
            print(f"[FAIL] {fn.__name__} -- {type(exc).__name__}: {exc}")
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
