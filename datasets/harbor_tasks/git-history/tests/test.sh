#!/bin/bash
# Verifier for git-history: binary reward in /logs/verifier/reward.txt.
mkdir -p /logs/verifier
if [ -d /app/site/.git ] && python3 /tests/check_repo.py; then
  echo 1 > /logs/verifier/reward.txt
else
  echo "FAILED"
  echo 0 > /logs/verifier/reward.txt
fi
exit 0
