"""Hidden checks for the refactor-rename task."""
import importlib
import os
import re
import subprocess
import sys
import unittest

APP = "/app"
HERE = os.environ.get("TESTS_DIR", "/tests")  # holds expected_cli.txt and products.json
sys.path.append(APP)
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


class ApiTests(unittest.TestCase):
    def test_old_module_not_importable(self):
        sys.modules.pop("inventory.utils", None)
        with self.assertRaises(ImportError):
            importlib.import_module("inventory.utils")

    def test_package_exports(self):
        import inventory
        for name in ("compute_total", "compute_tax", "format_money", "Cart", "build_report"):
            self.assertTrue(hasattr(inventory, name), f"inventory.{name} missing")
            self.assertIn(name, inventory.__all__)
        for old in ("calc_total", "calc_tax"):
            self.assertFalse(hasattr(inventory, old), f"inventory.{old} still exported")
            self.assertNotIn(old, inventory.__all__)
        self.assertFalse(hasattr(inventory, "utils"), "inventory.utils still present")

    def test_pricing_functions(self):
        from inventory import pricing
        items = [{"price_cents": 1999, "qty": 3}, {"price_cents": 1, "qty": 5}]
        self.assertEqual(pricing.compute_total(items), 6002)
        self.assertEqual(pricing.compute_total(items, discount_pct=25), 4501)  # 1500.5 -> 1501 off
        self.assertEqual(pricing.compute_total([], 50), 0)
        with self.assertRaises(ValueError):
            pricing.compute_total(items, discount_pct=101)
        self.assertEqual(pricing.compute_tax(amount_cents=250, rate_pct=7), 18)  # 17.5 -> 18
        self.assertEqual(pricing.compute_tax(1000, 0), 0)
        with self.assertRaises(ValueError):
            pricing.compute_tax(100, -1)
        self.assertEqual(pricing.format_money(100000000), "$1,000,000.00")
        self.assertEqual(pricing.format_money(-7), "-$0.07")
        self.assertFalse(hasattr(pricing, "calc_total"))
        self.assertFalse(hasattr(pricing, "calc_tax"))

    def test_cart(self):
        from inventory import Cart
        cart = Cart(tax_rate_pct=20, discount_pct=10)
        cart.add("x", 333, 3).add("y", 1001)
        self.assertEqual(cart.total_cents, 1800)  # 2000 - 200
        self.assertEqual(cart.tax_cents, 360)
        self.assertEqual(cart.grand_total_cents, 2160)
        cart.items.append({"sku": "z", "price_cents": 100, "qty": 1})
        cart.recalc_totals()
        self.assertEqual(cart.total_cents, 1890)

    def test_report(self):
        from inventory import build_report
        lines = build_report([{"sku": "b", "name": "B", "price_cents": 50, "qty": 3},
                              {"sku": "a", "name": "A", "price_cents": 1000, "qty": 1}], 10)
        self.assertTrue(lines[0].startswith("a "))
        self.assertTrue(lines[-2].endswith("$11.50"))
        self.assertTrue(lines[-1].endswith("$1.15"))


class CliTests(unittest.TestCase):
    def test_cli_output_unchanged(self):
        with open(os.path.join(HERE, "expected_cli.txt")) as fh:
            expected = fh.read()
        proc = subprocess.run([sys.executable, "-B", "-m", "inventory.cli", os.path.join(HERE, "products.json"),
                               "--tax", "8", "--discount", "15"], cwd=APP, capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, expected)

    def test_visible_tests_pass(self):
        test_file = os.path.join(APP, "tests", "test_inventory.py")
        self.assertTrue(os.path.isfile(test_file), "tests/test_inventory.py was removed")
        with open(test_file) as fh:
            self.assertIn("compute_total", fh.read())
        proc = subprocess.run([sys.executable, "-B", "-m", "unittest", "tests.test_inventory"],
                              cwd=APP, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])


if __name__ == "__main__":
    unittest.main()
