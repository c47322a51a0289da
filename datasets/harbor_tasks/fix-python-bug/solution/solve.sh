#!/bin/bash
set -euo pipefail
cd /app

# See what fails first.
python3 -m unittest 2>&1 | tail -n 5 || true

python3 - <<'PY'
from pathlib import Path

path = Path("/app/textstats/core.py")
src = path.read_text()

# 1. tokenize must lower-case words.
src = src.replace("            words.append(word)\n",
                  "            words.append(word.lower())\n")

# 2. top_words: tie-break alphabetically, handle n <= 0.
src = src.replace(
    "    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)\n"
    "    return ranked[:n]\n",
    "    if n <= 0:\n"
    "        return []\n"
    "    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))\n"
    "    return ranked[:n]\n",
)

# 3. average_word_length: no division by zero.
src = src.replace(
    "    words = tokenize(text)\n"
    "    return round(sum(len(w) for w in words) / len(words), 2)\n",
    "    words = tokenize(text)\n"
    "    if not words:\n"
    "        return 0.0\n"
    "    return round(sum(len(w) for w in words) / len(words), 2)\n",
)
path.write_text(src)
PY

python3 -m unittest
