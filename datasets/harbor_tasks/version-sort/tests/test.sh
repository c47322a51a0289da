#!/bin/bash
# Terminal-Bench style: pytest on the tests folder's own test file, the reward from its outcome.
mkdir -p /logs/verifier
# The agent's code runs as nobody (test_outputs.py): the expected answers are root's only.
chmod -R go-rwx /tests
cd /tests
if python3 -m pytest -q -p no:cacheprovider /tests/test_outputs.py -rA; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
