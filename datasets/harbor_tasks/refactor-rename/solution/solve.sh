#!/bin/bash
set -euo pipefail
cd /app
python3 -m inventory.cli data/products.json --tax 8 --discount 15 > /tmp/before.txt
grep -rnw -e calc_total -e calc_tax -e utils --include='*.py' . || true

mv inventory/utils.py inventory/pricing.py

# Whole-word replacements only, so that Cart.recalc_totals keeps its name.
find . -name '*.py' -not -path '*/__pycache__/*' -print0 | xargs -0 sed -i -E \
  -e 's/\bcalc_total\b/compute_total/g' \
  -e 's/\bcalc_tax\b/compute_tax/g' \
  -e 's/\bfrom \.utils import\b/from .pricing import/g' \
  -e 's/\binventory\.utils\b/inventory.pricing/g' \
  -e 's/\bfrom \. import utils\b/from . import pricing/g' \
  -e 's/\butils\./pricing./g'

find . -name __pycache__ -prune -exec rm -rf {} +
grep -rnw -e calc_total -e calc_tax /app || echo "old names gone"
grep -rnw utils --include='*.py' /app || echo "no utils references"
python3 -m unittest
python3 -m inventory.cli data/products.json --tax 8 --discount 15 > /tmp/after.txt
diff /tmp/before.txt /tmp/after.txt && echo "output unchanged"
