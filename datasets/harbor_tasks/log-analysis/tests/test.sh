#!/bin/bash
# Verifier for log-analysis: partial credit, written to /logs/verifier/reward.json.
mkdir -p /logs/verifier
python3 /tests/check_report.py
if [ ! -s /logs/verifier/reward.json ]; then
  echo '{"reward": 0.0, "checks_passed": 0, "checks_total": 20}' > /logs/verifier/reward.json
fi
exit 0
