"""Behavioural checks for /app/bin/kv.sh; writes /logs/verifier/reward.json."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SCRIPT = "/app/bin/kv.sh"
DEFAULT_DB = "/app/data/kv.db"
REWARD = "/logs/verifier/reward.json"


class Store:
    """A fresh KV_FILE in a private temporary directory."""

    def __init__(self, content=None):
        self.dir = tempfile.mkdtemp(prefix="kvcheck-")
        self.path = os.path.join(self.dir, "store.db")
        if content is not None:
            with open(self.path, "w") as fh:
                fh.write(content)

    def run(self, *args, env_file=True):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": os.environ.get("HOME", "/root"), "LC_ALL": "C.UTF-8"}
        if env_file:
            env["KV_FILE"] = self.path
        proc = subprocess.run([SCRIPT, *args], capture_output=True, env=env,
                              timeout=20, cwd=self.dir)
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")

    def read(self):
        try:
            with open(self.path) as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_run(result, code, stdout=None, stderr=None, stderr_prefix=None, what=""):
    rc, out, err = result
    expect(rc == code, f"{what}: expected exit {code}, got {rc} (stdout={out!r}, stderr={err!r})")
    if stdout is not None:
        expect(out == stdout, f"{what}: expected stdout {stdout!r}, got {out!r}")
    if stderr is not None:
        expect(err.strip() == stderr.strip(), f"{what}: expected stderr {stderr!r}, got {err!r}")
    if stderr_prefix is not None:
        expect(err.lstrip().startswith(stderr_prefix), f"{what}: stderr should start with {stderr_prefix!r}, got {err!r}")


# ---------------------------------------------------------------- checks

def check_executable(s):
    expect(os.path.isfile(SCRIPT), f"{SCRIPT} does not exist")
    expect(os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable")
    with open(SCRIPT, "rb") as fh:
        first = fh.readline()
    expect(first.startswith(b"#!") and b"bash" in first, f"bad shebang line: {first!r}")
    expect_run(s.run("count"), 0, stdout="0\n", what="count on missing store")


def check_set_get(s):
    expect_run(s.run("set", "name", "Ada Lovelace"), 0, stdout="", what="set name")
    expect(s.read() is not None, "set did not create the store file")
    expect_run(s.run("get", "name"), 0, stdout="Ada Lovelace\n", what="get name")
    expect(s.read() == "name=Ada Lovelace\n", f"store file content is {s.read()!r}, expected 'name=Ada Lovelace\\n'")


def check_overwrite(s):
    s.run("set", "color", "red")
    s.run("set", "size", "XL")
    expect_run(s.run("set", "color", "blue"), 0, stdout="", what="overwrite")
    expect_run(s.run("get", "color"), 0, stdout="blue\n", what="get overwritten")
    expect_run(s.run("get", "size"), 0, stdout="XL\n", what="get untouched key")
    expect_run(s.run("count"), 0, stdout="2\n", what="count after overwrite")


def check_special_values(s):
    values = {
        "eq": "a=b==c",
        "url": "https://x.example/p?q=1&r=2",
        "back": r"C:\temp\new \n \\ end",
        "glob": "* ? [abc] $HOME $(echo no) `echo no`",
        "quotes": "it's \"quoted\"",
        "spaces": "  lead and trail  ",
        "empty": "",
    }
    for key, value in values.items():
        expect_run(s.run("set", key, value), 0, stdout="", what=f"set {key}")
    for key, value in values.items():
        expect_run(s.run("get", key), 0, stdout=value + "\n", what=f"get {key}")


def check_get_missing(s):
    s.run("set", "present", "1")
    before = s.read()
    expect_run(s.run("get", "absent"), 1, stdout="", stderr="error: key not found: absent", what="get missing key")
    expect(s.read() == before, "store changed by failed get")
    empty = Store()
    try:
        expect_run(empty.run("get", "anything"), 1, stdout="", stderr="error: key not found: anything",
                   what="get on missing store file")
    finally:
        empty.close()


def check_del(s):
    s.run("set", "a", "1")
    s.run("set", "b", "2")
    s.run("set", "c", "3")
    expect_run(s.run("del", "b"), 0, stdout="", what="del b")
    expect_run(s.run("get", "b"), 1, stdout="", what="get deleted key")
    expect_run(s.run("get", "a"), 0, stdout="1\n", what="get a after del b")
    expect_run(s.run("get", "c"), 0, stdout="3\n", what="get c after del b")
    before = s.read()
    expect_run(s.run("del", "b"), 1, stdout="", stderr="error: key not found: b", what="del missing key")
    expect(s.read() == before, "store changed by failed del")
    expect_run(s.run("count"), 0, stdout="2\n", what="count after del")


def check_list_sorted(s):
    for key, value in [("item2", "two"), ("item", "one"), ("_x", "under"), ("Item", "cap=1"), ("a1", "x"), ("a", "y")]:
        s.run("set", key, value)
    expected = "Item=cap=1\n_x=under\na=y\na1=x\nitem=one\nitem2=two\n"
    expect_run(s.run("list"), 0, stdout=expected, what="list")


def check_empty_store(s):
    expect_run(s.run("list"), 0, stdout="", what="list on missing store")
    expect_run(s.run("count"), 0, stdout="0\n", what="count on missing store")
    s.run("set", "only", "1")
    s.run("del", "only")
    expect_run(s.run("list"), 0, stdout="", what="list after deleting the only key")
    expect_run(s.run("count"), 0, stdout="0\n", what="count after deleting the only key")


def check_existing_file(s):
    with open(s.path, "w") as fh:
        fh.write("zeta=last\nalpha=a=1&b=2\nmid=  spaced value\n")
    expect_run(s.run("get", "alpha"), 0, stdout="a=1&b=2\n", what="get from pre-existing file")
    expect_run(s.run("get", "mid"), 0, stdout="  spaced value\n", what="get value with leading spaces")
    expect_run(s.run("count"), 0, stdout="3\n", what="count pre-existing file")
    expect_run(s.run("list"), 0, stdout="alpha=a=1&b=2\nmid=  spaced value\nzeta=last\n", what="list pre-existing file")
    expect_run(s.run("get", "alph"), 1, stdout="", what="prefix of a key must not match")


def check_invalid_key(s):
    s.run("set", "ok", "1")
    before = s.read()
    for bad in ["9lives", "has-dash", "sp ace", "a=b", ""]:
        expect_run(s.run("set", bad, "v"), 3, stdout="", stderr=f"error: invalid key: {bad}", what=f"set invalid key {bad!r}")
    expect_run(s.run("get", "bad.key"), 3, stdout="", stderr="error: invalid key: bad.key", what="get invalid key")
    expect_run(s.run("del", "-x"), 3, stdout="", stderr="error: invalid key: -x", what="del invalid key")
    expect(s.read() == before, "store changed by invalid-key commands")


def check_usage_errors(s):
    s.run("set", "ok", "1")
    before = s.read()
    cases = [(), ("frobnicate",), ("set", "k"), ("set", "k", "v", "extra"), ("get",),
             ("get", "a", "b"), ("del",), ("list", "x"), ("count", "x"), ("GET", "ok")]
    for args in cases:
        expect_run(s.run(*args), 2, stdout="", stderr_prefix="usage:", what=f"usage error for {args!r}")
    # usage errors are checked before key validity
    expect_run(s.run("set", "9bad"), 2, stdout="", stderr_prefix="usage:", what="usage before invalid key")
    expect(s.read() == before, "store changed by usage errors")


def check_default_file(s):
    backup = None
    if os.path.exists(DEFAULT_DB):
        with open(DEFAULT_DB, "rb") as fh:
            backup = fh.read()
    try:
        with open(DEFAULT_DB, "w") as fh:
            fh.write("greeting=hello world\nurl=https://example.com/?a=1&b=2\n")
        expect_run(s.run("get", "greeting", env_file=False), 0, stdout="hello world\n", what="get from default store")
        expect_run(s.run("set", "added", "yes", env_file=False), 0, stdout="", what="set in default store")
        with open(DEFAULT_DB) as fh:
            content = fh.read()
        expect("added=yes\n" in content and "greeting=hello world\n" in content,
               f"default store content unexpected: {content!r}")
        expect(s.read() is None, "KV_FILE of another test was touched")
    finally:
        if backup is None:
            try:
                os.remove(DEFAULT_DB)
            except FileNotFoundError:
                pass
        else:
            with open(DEFAULT_DB, "wb") as fh:
                fh.write(backup)


CHECKS = [
    check_executable, check_set_get, check_overwrite, check_special_values,
    check_get_missing, check_del, check_list_sorted, check_empty_store,
    check_existing_file, check_invalid_key, check_usage_errors, check_default_file,
]


def main():
    results = {}
    for check in CHECKS:
        name = check.__name__[len("check_"):]
        store = Store()
        try:
            check(store)
            results[name] = True
            print(f"[PASS] {name}")
        except Exception as exc:
            results[name] = False
            print(f"[FAIL] {name} -- {type(exc).__name__}: {exc}")
        finally:
            store.close()
    passed = sum(results.values())
    reward = {"reward": round(passed / len(results), 4), "checks_passed": passed, "checks_total": len(results)}
    return reward


if __name__ == "__main__":
    try:
        reward = main()
    except Exception as exc:
        print(f"checker crashed: {exc}", file=sys.stderr)
        reward = {"reward": 0.0, "checks_passed": 0, "checks_total": len(CHECKS)}
    os.makedirs(os.path.dirname(REWARD), exist_ok=True)
    with open(REWARD, "w") as fh:
        json.dump(reward, fh)
    print(json.dumps(reward))
