#!/bin/bash
# Verifier for staged-build: binary reward in /logs/verifier/reward.txt. The last artifact
# chains every stage's output, so it is right only if all 16 ran in order on unchanged scripts.
mkdir -p /logs/verifier
prev=seed
for n in $(seq -w 1 16); do
  prev=$(printf "%s stage-%s\n" "$prev" "$n" | sha256sum | cut -c1-16)
done
if [ "$prev" = "$(cat /tests/expected.txt)" ] && [ -f /app/out/16.txt ] \
  && [ "$(cat /app/out/16.txt)" = "$prev" ] && grep -qx "codegen=portable" /app/build.cfg; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
exit 0
