#!/bin/bash
set -euo pipefail
cd /app
head -n 3 data/customers.csv data/orders.csv
mkdir -p /app/output

cat > /app/convert.py <<'PY'
import csv
import json
from collections import Counter, defaultdict


def clean(value):
    value = (value or "").strip()
    return value or None


def iso(date):
    month, day, year = date.strip().split("/")
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def money(value):
    return round(float(value.strip().replace(",", "")), 2)


with open("/app/data/customers.csv", newline="") as fh:
    customers = []
    for row in csv.DictReader(fh):
        customers.append({
            "id": int(row["customer_id"].strip()),
            "name": clean(row["name"]),
            "email": clean(row["email"]).lower(),
            "country": clean(row["country"]),
            "signup_date": iso(row["signup_date"]),
        })
customers.sort(key=lambda c: c["id"])

with open("/app/data/orders.csv", newline="") as fh:
    orders = []
    for row in csv.DictReader(fh):
        items = [i.strip() for i in (row["items"] or "").split(";")]
        orders.append({
            "order_id": int(row["order_id"].strip()),
            "customer_id": int(row["customer_id"].strip()),
            "amount": money(row["amount"]),
            "status": clean(row["status"]).lower(),
            "items": [i for i in items if i],
            "ordered_at": iso(row["ordered_at"]),
        })
orders.sort(key=lambda o: o["order_id"])

by_id = {c["id"]: c for c in customers}
paid = [o for o in orders if o["status"] == "paid"]
by_country = defaultdict(float)
by_customer = defaultdict(float)
for o in paid:
    country = by_id[o["customer_id"]]["country"] or "unknown"
    by_country[country] += o["amount"]
    by_customer[o["customer_id"]] += o["amount"]
top_id = max(by_customer, key=lambda cid: by_customer[cid])

report = {
    "customers": customers,
    "orders": orders,
    "summary": {
        "total_orders": len(orders),
        "orders_by_status": dict(Counter(o["status"] for o in orders)),
        "paid_revenue": round(sum(o["amount"] for o in paid), 2),
        "revenue_by_country": {k: round(v, 2) for k, v in sorted(by_country.items())},
        "top_customer": {
            "id": top_id,
            "name": by_id[top_id]["name"],
            "paid_total": round(by_customer[top_id], 2),
        },
    },
}
with open("/app/output/report.json", "w") as fh:
    json.dump(report, fh, indent=2)
    fh.write("\n")
PY

python3 /app/convert.py
jq '.summary' /app/output/report.json
