import unittest

from inventory import Cart, build_report, calc_tax, calc_total, format_money


class PricingTests(unittest.TestCase):
    def test_calc_total(self):
        items = [{"price_cents": 250, "qty": 2}, {"price_cents": 99, "qty": 1}]
        self.assertEqual(calc_total(items), 599)
        self.assertEqual(calc_total(items, 10), 539)

    def test_calc_tax(self):
        self.assertEqual(calc_tax(1000, 8), 80)
        self.assertEqual(calc_tax(5, 10), 1)

    def test_format_money(self):
        self.assertEqual(format_money(123405), "$1,234.05")
        self.assertEqual(format_money(-50), "-$0.50")


class CartTests(unittest.TestCase):
    def test_cart(self):
        cart = Cart(tax_rate_pct=10).add("a", 1000, 2).add("b", 250)
        self.assertEqual(cart.total_cents, 2250)
        self.assertEqual(cart.tax_cents, 225)
        self.assertEqual(cart.grand_total_cents, 2475)
        cart.remove("a")
        self.assertEqual(cart.grand_total_cents, 275)


class ReportTests(unittest.TestCase):
    def test_report_total_line(self):
        lines = build_report([{"sku": "x", "name": "X", "price_cents": 100, "qty": 3}], 5)
        self.assertTrue(lines[-2].endswith("$3.00"))
        self.assertTrue(lines[-1].endswith("$0.15"))


if __name__ == "__main__":
    unittest.main()
