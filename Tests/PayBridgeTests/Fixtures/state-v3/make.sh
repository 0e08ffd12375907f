#!/usr/bin/env bash
# Makes paybridge.sqlite here: a state written by the release whose SQLite schema is v3 (GRDB
# migrations v1, v2-pipeline, v3-operations), kept so StateUpgradeTests can check that a later
# release opens it in place and loses nothing. Run from the repository root with that release
# built:  Tests/PayBridgeTests/Fixtures/state-v3/make.sh .build/debug/paybridge
# It is not run by the tests; its output is committed.
set -euo pipefail
binary="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bank=$(free_port) ok=$(free_port) failing=$(free_port)
# Receivers: one answers 204 to everything, one 503.
cat > "$work/receiver.py" <<'PY'
import http.server, sys
status = int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(status); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$work/receiver.py" "$ok" 204 &
python3 "$work/receiver.py" "$failing" 503 &
"$binary" sandbox --port "$bank" --initial-payments 5 --new-payment-every 1s --seed 7 --log-level error &
cat > "$work/paybridge.yaml" <<YAML
source:
  kind: banking-circle
  apiURL: http://127.0.0.1:$bank
  username: sandbox
  password: sandbox
  watches:
    - name: recent
      every: 1s
      query:
        InstructedDateFrom: -3d
state:
  path: $work/state
endpoints:
  erp:
    url: http://127.0.0.1:$ok/erp
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  alerts:
    url: http://127.0.0.1:$failing/alerts
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    retry: [1s]
  chat:
    url: http://127.0.0.1:$ok/chat
    format: slack
    group: { by: [status], wait: 1h, interval: 1h }
  teams:
    url: http://127.0.0.1:$ok/teams
    format: teams
  down:
    url: http://127.0.0.1:$failing/down
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    retry: [6s]
routes:
  - when: { type: [payment.created, payment.status_changed] }
    to: [erp, alerts, chat, teams, down]
YAML
sleep 1
"$binary" run --config "$work/paybridge.yaml" --log-level warning &
run=$!
sleep 12
kill -TERM "$run"
wait "$run" || true
"$binary" endpoints disable erp --config "$work/paybridge.yaml" --reason "fixture: disabled by an operator" >/dev/null
sqlite3 "$work/state/paybridge.sqlite" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
cp "$work/state/paybridge.sqlite" "$here/paybridge.sqlite"
chmod 644 "$here/paybridge.sqlite"
sqlite3 "$here/paybridge.sqlite" "SELECT identifier FROM grdb_migrations; SELECT state, COUNT(*) FROM delivery GROUP BY state; SELECT COUNT(*) FROM group_member; SELECT COUNT(*) FROM rendering; SELECT name, disabled_reason FROM endpoint_state;"
# What today's release's reading commands say of it (StateUpgradeTests compares a later release's).
python3 - "$binary" "$work/paybridge.yaml" "$here" <<'PY'
import json, sqlite3, subprocess, sys
binary, config, here = sys.argv[1:]
ids = [row[0] for row in sqlite3.connect(f"{here}/paybridge.sqlite").execute("SELECT id FROM payment ORDER BY id")]
commands = [["events", "list", "--limit", "1000", "--json"], ["deliveries", "list", "--limit", "1000", "--json"],
            ["endpoints", "list", "--json"]] + [["payments", "show", id, "--json"] for id in ids]
golden = []
for args in commands:
    out = subprocess.run([binary] + args + ["--config", config], capture_output=True, text=True, check=True).stdout
    golden.append({"args": args, "output": json.loads(out)})
json.dump({"commands": golden}, open(f"{here}/golden.json", "w"), sort_keys=True, separators=(",", ":"))
PY
