#!/bin/bash
# Verifier for repair-config: binary reward in /logs/verifier/reward.txt.
mkdir -p /logs/verifier
EXPECTED="CONFIG OK host=0.0.0.0 port=8080 workers=4 db_path=/app/service/data/inventory.db pool_size=5 timeout=2.5 log_level=INFO log_file=/app/service/logs/service.log"
fail=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then echo "[PASS] $name"; else echo "[FAIL] $name"; fail=1; fi
}

# 1. A pristine copy of the service validates the repaired configuration.
out=$(cd /tmp && python3 /tests/app_pristine.py --check --config-dir /app/service 2>&1)
rc=$?
echo "pristine app.py --check (rc=$rc): $out"
check "pristine check passes" test "$rc" -eq 0
check "pristine check output" test "$out" = "$EXPECTED"

# 2. The shipped app.py itself is unmodified and also succeeds.
check "app.py unmodified" cmp -s /tests/app_pristine.py /app/service/app.py
out2=$(cd /app/service && python3 app.py --check 2>&1)
check "app.py --check output" test "$out2" = "$EXPECTED"

# 3. Files keep their formats and the other settings.
check "config files keep formats and settings" python3 - <<'PY'
import configparser, json, sys
ini = configparser.ConfigParser(interpolation=None, strict=True)
ini.read("/app/service/config.ini")
log = json.load(open("/app/service/logging.json"))
ok = (
    ini.sections() == ["server", "database"]
    and ini.get("server", "port") == "8080"
    and ini.get("database", "path") == "/app/service/data/inventory.db"
    and isinstance(log, dict)
    and log.get("level") == "INFO"
    and isinstance(log.get("rotate"), dict)
    and log["rotate"].get("max_bytes") == 1048576
    and log["rotate"].get("backups") == 3
)
if not ok:
    print("unexpected config contents:", ini.sections(), log, file=sys.stderr)
sys.exit(0 if ok else 1)
PY

if [ "$fail" -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
exit 0
