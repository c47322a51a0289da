"""Checks /app/output/report.json against /tests/expected.json.

Writes /logs/verifier/reward.json with the fraction of checks passed.
"""
import json
import os
import sys

REPORT = "/app/output/report.json"
EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected.json")
REWARD = "/logs/verifier/reward.json"
TOL = 0.005


def same(expected, actual, path="$"):
    """Strict structural comparison; returns None or a description of the first difference."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if type(actual) is not type(expected) or actual != expected:
            return f"{path}: expected {expected!r}, got {actual!r}"
        return None
    if isinstance(expected, int):
        if type(actual) is not int:
            return f"{path}: expected integer {expected!r}, got {actual!r}"
        if actual != expected:
            return f"{path}: expected {expected!r}, got {actual!r}"
        return None
    if isinstance(expected, float):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return f"{path}: expected number {expected!r}, got {actual!r}"
        if abs(actual - expected) > TOL:
            return f"{path}: expected {expected!r}, got {actual!r}"
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}: expected a list, got {actual!r}"
        if len(actual) != len(expected):
            return f"{path}: expected {len(expected)} items, got {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            diff = same(e, a, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {actual!r}"
        if set(actual) != set(expected):
            return f"{path}: expected keys {sorted(expected)}, got {sorted(actual)}"
        for key in expected:
            diff = same(expected[key], actual[key], f"{path}.{key}")
            if diff:
                return diff
        return None
    raise TypeError(f"unexpected type in expected data at {path}")


def main():
    with open(EXPECTED) as fh:
        expected = json.load(fh)

    report = None
    load_error = None
    try:
        with open(REPORT) as fh:
            report = json.load(fh)
    except Exception as exc:  # missing file, invalid JSON, ...
        load_error = f"cannot load {REPORT}: {exc}"

    def section(*keys):
        def get(obj):
            for key in keys:
                obj = obj[key]
            return obj
        return get

    checks = [
        ("top_level_keys", lambda r: None if isinstance(r, dict) and set(r) == {"customers", "orders", "summary"}
         else f"top-level keys must be exactly customers, orders, summary; got {sorted(r) if isinstance(r, dict) else type(r).__name__}"),
        ("customers", lambda r: same(expected["customers"], section("customers")(r), "$.customers")),
        ("orders", lambda r: same(expected["orders"], section("orders")(r), "$.orders")),
        ("summary_counts", lambda r: same(expected["summary"]["total_orders"], section("summary", "total_orders")(r), "$.summary.total_orders")
         or same(expected["summary"]["orders_by_status"], section("summary", "orders_by_status")(r), "$.summary.orders_by_status")),
        ("summary_paid_revenue", lambda r: same(expected["summary"]["paid_revenue"], section("summary", "paid_revenue")(r), "$.summary.paid_revenue")),
        ("summary_revenue_by_country", lambda r: same(expected["summary"]["revenue_by_country"], section("summary", "revenue_by_country")(r), "$.summary.revenue_by_country")),
        ("summary_top_customer", lambda r: same(expected["summary"]["top_customer"], section("summary", "top_customer")(r), "$.summary.top_customer")),
        ("summary_keys", lambda r: None if isinstance(section("summary")(r), dict) and set(section("summary")(r)) == set(expected["summary"])
         else "summary must have exactly the keys " + ", ".join(sorted(expected["summary"]))),
    ]

    results = {}
    for name, check in checks:
        if load_error:
            ok, msg = False, load_error
        else:
            try:
                msg = check(report)
            except Exception as exc:
                msg = f"error: {type(exc).__name__}: {exc}"
            ok = msg is None
        results[name] = ok
        print(f"[{'PASS' if ok else 'FAIL'}] {name}" + ("" if ok else f" -- {msg}"))

    passed = sum(results.values())
    total = len(results)
    reward = {"reward": round(passed / total, 4), "checks_passed": passed, "checks_total": total}
    for name, ok in results.items():
        reward[f"check_{name}"] = 1 if ok else 0
    return reward


if __name__ == "__main__":
    try:
        reward = main()
    except Exception as exc:  # never leave without a reward file
        print(f"checker crashed: {exc}", file=sys.stderr)
        reward = {"reward": 0.0, "checks_passed": 0, "checks_total": 8}
    os.makedirs(os.path.dirname(REWARD), exist_ok=True)
    with open(REWARD, "w") as fh:
        json.dump(reward, fh)
    print(json.dumps(reward))
