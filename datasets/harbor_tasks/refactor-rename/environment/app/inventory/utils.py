"""Pricing helpers.

All money amounts are handled in integer cents to avoid float rounding.
"""


def calc_total(items, discount_pct=0):
    """Return the total in cents of ``items`` after a percentage discount.

    ``items`` is an iterable of dicts with ``price_cents`` and ``qty`` keys.
    The discount is applied to the sum and rounded half up to whole cents.
    """
    subtotal = sum(int(item["price_cents"]) * int(item["qty"]) for item in items)
    if not 0 <= discount_pct <= 100:
        raise ValueError("discount_pct must be between 0 and 100")
    discount = (subtotal * discount_pct * 2 + 100) // 200  # round half up
    return subtotal - discount


def calc_tax(amount_cents, rate_pct):
    """Return the tax in cents for ``amount_cents`` at ``rate_pct`` percent (half up)."""
    if rate_pct < 0:
        raise ValueError("rate_pct must be >= 0")
    return (amount_cents * rate_pct * 2 + 100) // 200


def format_money(cents):
    """Format integer cents as a string like ``$1,234.05`` (``-$0.50`` for negatives)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"
