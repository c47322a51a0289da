#!/bin/bash
# Runs the hidden copy of the test suite against /app/textstats.
mkdir -p /logs/verifier
# textstats runs as nobody (test_textstats_hidden.py): the expected answers are root's only.
chmod -R go-rwx /tests
WORK=$(mktemp -d)
cp /tests/test_textstats_hidden.py "$WORK/"
cd "$WORK"
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest -v test_textstats_hidden
status=$?
if [ "$status" -eq 0 ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
rm -rf "$WORK"
exit 0
