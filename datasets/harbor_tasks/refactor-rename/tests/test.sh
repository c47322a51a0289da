#!/bin/bash
# Verifier for refactor-rename: binary reward in /logs/verifier/reward.txt.
mkdir -p /logs/verifier
# The package runs as nobody (test_refactor.py): the expected answers are root's only.
chmod -R go-rwx /tests
WORK=$(mktemp -d)
cp /tests/test_refactor.py "$WORK/"
cd "$WORK"
if PYTHONDONTWRITEBYTECODE=1 python3 -m unittest -v test_refactor; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
rm -rf "$WORK"
exit 0
