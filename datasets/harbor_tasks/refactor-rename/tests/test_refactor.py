"""Hidden checks for the refactor-rename task.

The agent's code runs only in processes of its own, as `nobody` (`run_as_nobody`): never in
the tests' process (where `os._exit(0)` on import would end unittest with a pass, or a patch
would change what the tests compare), and unable to read the expected answers (test.sh makes
/tests readable by root only). What it prints is all that comes back."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

APP = "/app"
HERE = os.environ.get("TESTS_DIR", "/tests")  # holds expected_cli.txt and products.json
sys.dont_write_bytecode = True

OLD_WORDS = re.compile(r"\b(calc_total|calc_tax)\b")
UTILS_WORD = re.compile(r"\butils\b")


def app_files():
    for root, dirs, files in os.walk(APP):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".git")]
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            yield os.path.join(root, name)


class LayoutTests(unittest.TestCase):
    def test_module_renamed(self):
        self.assertFalse(os.path.exists(os.path.join(APP, "inventory", "utils.py")), "inventory/utils.py still exists")
        self.assertTrue(os.path.isfile(os.path.join(APP, "inventory", "pricing.py")), "inventory/pricing.py missing")

    def test_old_names_gone(self):
        hits = []
        for path in app_files():
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except (UnicodeDecodeError, OSError):
                continue
            for lineno, line in enumerate(text.splitlines(), 1):
                if OLD_WORDS.search(line):
                    hits.append(f"{path}:{lineno}: {line.strip()}")
                if path.endswith(".py") and UTILS_WORD.search(line):
                    hits.append(f"{path}:{lineno}: {line.strip()}")
        self.assertEqual(hits, [], "old names still referenced:\n" + "\n".join(hits[:10]))

    def test_recalc_totals_not_renamed(self):
        with open(os.path.join(APP, "inventory", "cart.py")) as fh:
            text = fh.read()
        self.assertIn("def recalc_totals(", text)
        self.assertNotIn("recompute_totals", text)


def run_as_nobody(argv, **kwargs):
    return subprocess.run(
        argv, capture_output=True, text=True, user="nobody", group="nogroup", extra_groups=[], **kwargs
    )


# What the package does, observed in a process of its own: each key -> the repr of a value, or
# "raised <exception type>".
PROBE = """
import importlib, json, sys
sys.path.insert(0, "/app")
seen = {}
def observe(key, thunk):
    try:
        seen[key] = repr(thunk())
    except Exception as exc:
        seen[key] = "raised " + type(exc).__name__
observe("old module", lambda: importlib.import_module("inventory.utils") and "importable")
import inventory
names = ("compute_total", "compute_tax", "format_money", "Cart", "build_report", "calc_total", "calc_tax", "utils")
observe("exports", lambda: {n: (hasattr(inventory, n), n in getattr(inventory, "__all__", ())) for n in names})
from inventory import pricing
items = [{"price_cents": 1999, "qty": 3}, {"price_cents": 1, "qty": 5}]
observe("total", lambda: pricing.compute_total(items))
observe("total discounted", lambda: pricing.compute_total(items, discount_pct=25))
observe("total of nothing", lambda: pricing.compute_total([], 50))
observe("discount over 100", lambda: pricing.compute_total(items, discount_pct=101))
observe("tax", lambda: pricing.compute_tax(amount_cents=250, rate_pct=7))
observe("no tax", lambda: pricing.compute_tax(1000, 0))
observe("negative tax", lambda: pricing.compute_tax(100, -1))
observe("money", lambda: pricing.format_money(100000000))
observe("negative money", lambda: pricing.format_money(-7))
observe("old pricing names", lambda: (hasattr(pricing, "calc_total"), hasattr(pricing, "calc_tax")))
def cart():
    cart = inventory.Cart(tax_rate_pct=20, discount_pct=10)
    cart.add("x", 333, 3).add("y", 1001)
    totals = [cart.total_cents, cart.tax_cents, cart.grand_total_cents]
    cart.items.append({"sku": "z", "price_cents": 100, "qty": 1})
    cart.recalc_totals()
    return totals + [cart.total_cents]
observe("cart", cart)
def report():
    lines = inventory.build_report([{"sku": "b", "name": "B", "price_cents": 50, "qty": 3},
                                    {"sku": "a", "name": "A", "price_cents": 1000, "qty": 1}], 10)
    return (lines[0].startswith("a "), lines[-2].endswith("$11.50"), lines[-1].endswith("$1.15"))
observe("report", report)
print(json.dumps(seen))
"""
_seen = {}


def seen(key):
    """What the package did for `key`, as a value where its repr is a plain one."""
    if not _seen:
        run = run_as_nobody([sys.executable, "-I", "-B", "-c", PROBE], cwd="/", timeout=60)
        if run.returncode != 0:
            raise AssertionError("the package could not be probed: " + run.stderr[-2000:])
        _seen.update(json.loads(run.stdout.strip().splitlines()[-1]))
    try:
        return ast.literal_eval(_seen[key])
    except (ValueError, SyntaxError):
        return _seen[key]


class ApiTests(unittest.TestCase):
    def test_old_module_not_importable(self):
        self.assertIn(seen("old module"), ("raised ModuleNotFoundError", "raised ImportError"))

    def test_package_exports(self):
        exports = seen("exports")
        for name in ("compute_total", "compute_tax", "format_money", "Cart", "build_report"):
            self.assertEqual(exports[name], (True, True), f"inventory.{name} missing or not in __all__")
        for old in ("calc_total", "calc_tax"):
            self.assertEqual(exports[old], (False, False), f"inventory.{old} still exported")
        self.assertFalse(exports["utils"][0], "inventory.utils still present")

    def test_pricing_functions(self):
        self.assertEqual(seen("total"), 6002)
        self.assertEqual(seen("total discounted"), 4501)  # 1500.5 -> 1501 off
        self.assertEqual(seen("total of nothing"), 0)
        self.assertEqual(seen("discount over 100"), "raised ValueError")
        self.assertEqual(seen("tax"), 18)  # 17.5 -> 18
        self.assertEqual(seen("no tax"), 0)
        self.assertEqual(seen("negative tax"), "raised ValueError")
        self.assertEqual(seen("money"), "$1,000,000.00")
        self.assertEqual(seen("negative money"), "-$0.07")
        self.assertEqual(seen("old pricing names"), (False, False))

    def test_cart(self):
        self.assertEqual(seen("cart"), [1800, 360, 2160, 1890])  # 2000 - 200; with z: 2100 - 210

    def test_report(self):
        self.assertEqual(seen("report"), (True, True, True))


class CliTests(unittest.TestCase):
    def test_cli_output_unchanged(self):
        with open(os.path.join(HERE, "expected_cli.txt")) as fh:
            expected = fh.read()
        # The input, where nobody can read it (the tests folder is root's only).
        scratch = tempfile.mkdtemp()
        os.chmod(scratch, 0o755)
        products = shutil.copy(os.path.join(HERE, "products.json"), scratch)
        os.chmod(products, 0o644)
        try:
            proc = run_as_nobody(
                [sys.executable, "-B", "-m", "inventory.cli", products, "--tax", "8", "--discount", "15"],
                cwd=APP,
                timeout=30,
            )
        finally:
            shutil.rmtree(scratch)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, expected)

    def test_visible_tests_pass(self):
        test_file = os.path.join(APP, "tests", "test_inventory.py")
        self.assertTrue(os.path.isfile(test_file), "tests/test_inventory.py was removed")
        with open(test_file) as fh:
            self.assertIn("compute_total", fh.read())
        proc = run_as_nobody([sys.executable, "-B", "-m", "unittest", "tests.test_inventory"], cwd=APP, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])


if __name__ == "__main__":
    unittest.main()
