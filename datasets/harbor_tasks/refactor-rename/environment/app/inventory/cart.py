"""A shopping cart built on the pricing helpers."""

from .utils import calc_tax, calc_total


class Cart:
    def __init__(self, tax_rate_pct=0, discount_pct=0):
        self.tax_rate_pct = tax_rate_pct
        self.discount_pct = discount_pct
        self.items = []
        self.total_cents = 0
        self.tax_cents = 0

    def add(self, sku, price_cents, qty=1):
        if qty < 1:
            raise ValueError("qty must be >= 1")
        self.items.append({"sku": sku, "price_cents": price_cents, "qty": qty})
        self.recalc_totals()
        return self

    def remove(self, sku):
        self.items = [item for item in self.items if item["sku"] != sku]
        self.recalc_totals()
        return self

    def recalc_totals(self):
        """Recompute ``total_cents`` and ``tax_cents`` (uses calc_total / calc_tax)."""
        self.total_cents = calc_total(self.items, self.discount_pct)
        self.tax_cents = calc_tax(self.total_cents, self.tax_rate_pct)

    @property
    def grand_total_cents(self):
        return self.total_cents + self.tax_cents
