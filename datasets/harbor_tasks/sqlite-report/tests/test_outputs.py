"""The database holds the orders and the report sums them; the expected figures come from the
tests' own copy of the data, never from the agent's files."""

import csv
import sqlite3
import subprocess
from pathlib import Path


def expected_totals() -> list[tuple[str, int]]:
    db = sqlite3.connect(":memory:")
    db.executescript(Path("/tests/orders.sql").read_text())
    rows = db.execute("SELECT region, SUM(amount) FROM orders GROUP BY region ORDER BY 2 DESC").fetchall()
    return [(region, int(total)) for region, total in rows]


def test_database_holds_every_order():
    # The sqlite3 command-line tool (installed by the image), reading the agent's database file.
    out = subprocess.run(
        ["sqlite3", "-readonly", "/app/sales.db", "SELECT COUNT(*), SUM(amount) FROM orders"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    count, total = out.stdout.strip().split("|")
    assert int(count) == 60
    assert int(total) == sum(t for _, t in expected_totals())


def test_report_sums_each_region_largest_first():
    with open("/app/report.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["region", "total"]
    assert [(r, int(t)) for r, t in rows[1:]] == expected_totals()
