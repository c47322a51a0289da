#!/bin/bash
set -euo pipefail
cd /app
cat data/kv.db

cat > /app/bin/kv.sh <<'SCRIPT'
#!/bin/bash
# kv.sh - tiny key-value store kept in a KEY=VALUE text file.
KV_FILE="${KV_FILE:-/app/data/kv.db}"

usage() {
  echo "usage: kv.sh set KEY VALUE | get KEY | del KEY | list | count" >&2
  exit 2
}

check_key() {
  if ! [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    printf 'error: invalid key: %s\n' "$1" >&2
    exit 3
  fi
}

not_found() {
  printf 'error: key not found: %s\n' "$1" >&2
  exit 1
}

# Print every entry (one per line), skipping blank lines.
entries() {
  [ -f "$KV_FILE" ] || return 0
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] && printf '%s\n' "$line"
  done < "$KV_FILE"
  return 0
}

# Print the value of key $1; return 1 when missing.
lookup() {
  local line
  while IFS= read -r line; do
    if [ "${line%%=*}" = "$1" ]; then
      printf '%s\n' "${line#*=}"
      return 0
    fi
  done < <(entries)
  return 1
}

# Print all entries except key $1.
entries_without() {
  local line
  while IFS= read -r line; do
    [ "${line%%=*}" = "$1" ] || printf '%s\n' "$line"
  done < <(entries)
}

write_store() {  # stdin -> store file, atomically
  local tmp
  tmp=$(mktemp "${KV_FILE}.XXXXXX") || exit 1
  cat > "$tmp" && mv "$tmp" "$KV_FILE"
}

cmd="${1:-}"
case "$cmd" in
  set)
    [ $# -eq 3 ] || usage
    check_key "$2"
    { entries_without "$2"; printf '%s=%s\n' "$2" "$3"; } | write_store
    ;;
  get)
    [ $# -eq 2 ] || usage
    check_key "$2"
    lookup "$2" || not_found "$2"
    ;;
  del)
    [ $# -eq 2 ] || usage
    check_key "$2"
    lookup "$2" > /dev/null || not_found "$2"
    entries_without "$2" | write_store
    ;;
  list)
    [ $# -eq 1 ] || usage
    entries | LC_ALL=C sort -t '=' -k1,1
    ;;
  count)
    [ $# -eq 1 ] || usage
    entries | wc -l | tr -d ' '
    ;;
  *)
    usage
    ;;
esac
exit 0
SCRIPT
chmod +x /app/bin/kv.sh

# Quick self-test on a scratch store.
export KV_FILE=/tmp/kv-selftest.db
rm -f "$KV_FILE"
/app/bin/kv.sh set name "Ada Lovelace"
/app/bin/kv.sh set eq 'a=b'
/app/bin/kv.sh get name
/app/bin/kv.sh list
/app/bin/kv.sh count
rm -f "$KV_FILE"
