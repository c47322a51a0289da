#!/bin/bash
# Verifier for csv-to-json: partial credit, written to /logs/verifier/reward.json.
mkdir -p /logs/verifier
python3 /tests/check_report.py
if [ ! -s /logs/verifier/reward.json ]; then
  echo '{"reward": 0.0, "checks_passed": 0, "checks_total": 8}' > /logs/verifier/reward.json
fi
exit 0
