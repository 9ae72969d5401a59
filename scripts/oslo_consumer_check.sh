#!/usr/bin/env bash
# An image's life on our server, read back from RabbitMQ by oslo.messaging's own
# notification listener (scripts/oslo_listener.py). Used by .ci/run.
# usage: oslo_consumer_check.sh GLANCE_API_BINARY TRANSPORT_URL
set -euo pipefail
BIN=$1
URL=$2
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${OSLO_VENV:-$HOME/.cache/glance-api/venv-oslo}
if ! "$VENV/bin/python" -c 'import oslo_messaging' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q oslo.messaging
fi
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
API="http://127.0.0.1:$PORT"
NAME="oslo-check-$RANDOM$RANDOM"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

GLANCE__OSLO_MESSAGING_NOTIFICATIONS__DRIVER=messagingv2 GLANCE__DEFAULT__TRANSPORT_URL="$URL" \
  RUST_LOG=warn "$BIN" --data-dir "$WORK/data" --bind "127.0.0.1:$PORT" serve > "$WORK/server.log" 2>&1 &
pids+=($!)
"$VENV/bin/python" -W ignore "$HERE/oslo_listener.py" "$URL" "$NAME" --timeout 60 > "$WORK/listener.log" 2>&1 &
listener=$!
pids+=($listener)
for _ in $(seq 100); do curl -sf "$API/versions" >/dev/null && grep -q ready "$WORK/listener.log" && break; sleep 0.2; done

ID=$(curl -sf -X POST "$API/v2/images" -H 'Content-Type: application/json' \
  -d "{\"name\":\"$NAME\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
head -c 100000 /dev/urandom > "$WORK/img"
curl -sf -X PUT "$API/v2/images/$ID/file" -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/img"
curl -sf -X DELETE "$API/v2/images/$ID"

rc=0
wait "$listener" || rc=$?
cat "$WORK/listener.log" | grep -v -i eventlet | grep -v '^\s*$' | grep -v 'framework\|migrat\|from eventlet\|deprecated' || true
if [ $rc -ne 0 ]; then echo "server log:"; tail -20 "$WORK/server.log"; fi
exit $rc
