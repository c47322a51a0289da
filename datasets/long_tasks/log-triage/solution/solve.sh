#!/bin/bash
set -euo pipefail
cd /app/logs
for log in svc-*.log; do
  awk '$3 == "ERROR" { n++; if (!first) for (i = 4; i <= NF; i++) if ($i ~ /^code=/) { first = substr($i, 6); break } }
       END { if (n) print FILENAME " " first " " n }' "$log" | sed 's/\.log / /'
done | LC_ALL=C sort > /app/triage.txt
cat /app/triage.txt
