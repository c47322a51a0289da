"""Plain-text stock report."""

from . import utils


def build_report(products, tax_rate_pct=0):
    """Return a report (list of lines) of the stock value of ``products``.

    ``products`` is a list of dicts with ``sku``, ``name``, ``price_cents`` and
    ``qty``; lines are sorted by sku.
    """
    lines = []
    for product in sorted(products, key=lambda p: p["sku"]):
        value = utils.calc_total([product])
        lines.append(f"{product['sku']:<8}{product['name']:<20}{product['qty']:>5}  {utils.format_money(value):>12}")
    total = utils.calc_total(products)
    tax = utils.calc_tax(total, tax_rate_pct)
    lines.append("-" * 47)
    lines.append(f"{'TOTAL':<33}{utils.format_money(total):>14}")
    lines.append(f"{'TAX ' + str(tax_rate_pct) + '%':<33}{utils.format_money(tax):>14}")
    return lines
