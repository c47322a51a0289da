#!/bin/bash
set -euo pipefail
cd /app/service
cat README.md
python3 app.py --check || true

# config.ini: unterminated section header, out-of-range port, a duplicated
# (debug) host entry, and a decimal comma in the timeout.
sed -i 's/^\[database$/[database]/' config.ini
sed -i 's/^port = 80800$/port = 8080/' config.ini
sed -i '/^; temporary override/d; /^host = 127\.0\.0\.1$/d' config.ini
sed -i 's/^timeout_seconds = 2,5$/timeout_seconds = 2.5/' config.ini
cat config.ini
python3 app.py --check || true

# logging.json: trailing comma (invalid JSON) and an invalid log level.
python3 - <<'PY'
import re
path = "/app/service/logging.json"
text = open(path).read()
text = re.sub(r",(\s*[}\]])", r"\1", text)
text = text.replace('"level": "verbose"', '"level": "INFO"')
open(path, "w").write(text)
PY
python3 -m json.tool logging.json
python3 app.py --check
