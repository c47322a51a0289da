"""Checks /app/report.txt and runs /app/analyze_log.sh on a hidden log.

Each report line (10 per report, 2 reports) is one check; the reward is the
fraction of checks passed, written to /logs/verifier/reward.json.
"""
import json
import os
import subprocess
import sys

TESTS = "/tests"
REWARD = "/logs/verifier/reward.json"
SCRIPT = "/app/analyze_log.sh"


def expected_lines(name):
    with open(os.path.join(TESTS, name)) as fh:
        return fh.read().splitlines()


def score(label, expected, actual_lines):
    passed = 0
    for i, exp in enumerate(expected):
        got = actual_lines[i] if i < len(actual_lines) else None
        ok = got == exp
        passed += ok
        print(f"[{'PASS' if ok else 'FAIL'}] {label} line {i + 1}: expected {exp!r}" + ("" if ok else f", got {got!r}"))
    if len(actual_lines) > len(expected):
        print(f"note: {label} has {len(actual_lines) - len(expected)} extra line(s)")
    return passed


def main():
    exp_report = expected_lines("expected_report.txt")
    exp_hidden = expected_lines("expected_hidden.txt")
    total = len(exp_report) + len(exp_hidden)

    try:
        with open("/app/report.txt") as fh:
            report = fh.read().splitlines()
    except OSError as exc:
        print(f"cannot read /app/report.txt: {exc}")
        report = []
    report_passed = score("report.txt", exp_report, report)

    hidden = []
    if os.path.isfile(SCRIPT) and os.access(SCRIPT, os.X_OK):
        try:
            proc = subprocess.run([SCRIPT, os.path.join(TESTS, "hidden_access.log")],
                                  capture_output=True, text=True, timeout=30, cwd="/tmp")
            if proc.returncode == 0:
                hidden = proc.stdout.splitlines()
            else:
                print(f"{SCRIPT} exited with {proc.returncode}: {proc.stderr[-500:]}")
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"running {SCRIPT} failed: {exc}")
    else:
        print(f"{SCRIPT} missing or not executable")
    hidden_passed = score("hidden log", exp_hidden, hidden)

    passed = report_passed + hidden_passed
    return {
        "reward": round(passed / total, 4),
        "checks_passed": passed,
        "checks_total": total,
        "report_lines_correct": report_passed,
        "hidden_log_lines_correct": hidden_passed,
    }


if __name__ == "__main__":
    try:
        reward = main()
    except Exception as exc:
        print(f"checker crashed: {exc}", file=sys.stderr)
        reward = {"reward": 0.0, "checks_passed": 0, "checks_total": 20}
    os.makedirs(os.path.dirname(REWARD), exist_ok=True)
    with open(REWARD, "w") as fh:
        json.dump(reward, fh)
    print(json.dumps(reward))
