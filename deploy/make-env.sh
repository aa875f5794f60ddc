#!/usr/bin/env bash
# Write .env for docker-compose.yml from .env.example, with a fresh random value for every change-me
# placeholder (passwords, JWT and session secrets) and a new Fernet key. Refuses to overwrite .env.
#   bash deploy/make-env.sh [TARGET]      (default: .env in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-.env}
[[ ! -e $target ]] || { echo "make-env: $target exists; remove it first to start over" >&2; exit 1; }
python3 - .env.example "$target" <<'PY'
import base64, os, re, secrets, sys

source, target = sys.argv[1:]
text = open(source, encoding="utf-8").read()
text = re.sub(r"^AIRFLOW_FERNET_KEY=.*$",
              lambda m: "AIRFLOW_FERNET_KEY=" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
              text, flags=re.M)
text = re.sub(r"^([A-Z0-9_]+=)change-me[A-Za-z0-9_-]*$", lambda m: m.group(1) + secrets.token_hex(20), text,
              flags=re.M)
fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as out:
    out.write(text)
PY
echo "make-env: wrote $target (passwords in it; keep it private)"
