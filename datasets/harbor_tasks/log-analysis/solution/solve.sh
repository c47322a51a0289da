#!/bin/bash
set -euo pipefail
cd /app
head -n 5 data/access.log
grep -c '' data/access.log

cat > /app/analyze_log.sh <<'SCRIPT'
#!/bin/bash
# Usage: analyze_log.sh LOGFILE  -- prints a 10-line summary report.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -r "$1" ]; then
  echo "usage: analyze_log.sh LOGFILE" >&2
  exit 2
fi

LC_ALL=C awk '
BEGIN {
  split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", names, " ")
  for (i = 1; i <= 12; i++) mon[names[i]] = sprintf("%02d", i)
}
# best(arr): key with the highest count, ties -> smallest key (byte order)
function best(arr,    k, bk, bc) {
  bc = -1
  for (k in arr) if (arr[k] > bc || (arr[k] == bc && k < bk)) { bk = k; bc = arr[k] }
  return bk " " bc
}
# well-formed: IP ident user [timestamp] "METHOD PATH PROTO" NNN SIZE
/^[^ ]+ [^ ]+ [^ ]+ \[[^]]+\] "[^ ]+ [^ ]+ [^ ]+" [0-9][0-9][0-9] ([0-9]+|-)$/ {
  total++
  ip[$1]++
  ts = substr($4, 2)                       # DD/Mon/YYYY:HH:MM:SS
  split(ts, t, "[/:]")
  hour[t[3] "-" mon[t[2]] "-" t[1] "T" t[4]]++
  path = $7; sub(/\?.*/, "", path); paths[path]++
  class = substr($9, 1, 1); status[class]++
  if ($10 != "-") bytes += $10
}
END {
  n = 0; for (k in ip) n++
  printf "total_requests=%d\nunique_ips=%d\n", total, n
  for (c = 2; c <= 5; c++) printf "status_%dxx=%d\n", c, status[c]
  printf "total_bytes=%d\n", bytes
  print "top_ip=" best(ip)
  print "top_path=" best(paths)
  print "busiest_hour=" best(hour)
}' "$1"
SCRIPT
chmod +x /app/analyze_log.sh

/app/analyze_log.sh /app/data/access.log > /app/report.txt
cat /app/report.txt
