"""Command line entry point: ``python3 -m inventory.cli PRODUCTS.json [--tax PCT]``."""

import argparse
import json
import sys

from inventory.report import build_report
from inventory.utils import calc_total, format_money


def main(argv=None):
    parser = argparse.ArgumentParser(prog="inventory.cli")
    parser.add_argument("products", help="JSON file with a list of products")
    parser.add_argument("--tax", type=int, default=0, help="tax rate in percent")
    parser.add_argument("--discount", type=int, default=0, help="discount in percent for the quote line")
    args = parser.parse_args(argv)
    with open(args.products) as fh:
        products = json.load(fh)
    for line in build_report(products, args.tax):
        print(line)
    quote = calc_total(products, args.discount)
    print(f"QUOTE ({args.discount}% off): {format_money(quote)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
