#!/bin/bash
# Verifier for log-triage: binary reward in /logs/verifier/reward.txt.
mkdir -p /logs/verifier
if [ -f /app/triage.txt ] && diff <(sed 's/[[:space:]]*$//' /app/triage.txt) /tests/expected.txt; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
exit 0
