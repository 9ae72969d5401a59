#!/usr/bin/env bash
# Property-based tests of a running server against its own OpenAPI document
# (/v2/openapi.json): schemathesis (PyPI, pinned by schemathesis-constraints.txt)
# generates valid and invalid requests for every operation and fails on any 5xx.
# Bounded: at most MAX_EXAMPLES cases per operation, and TIMEOUT seconds in all.
#
#   scripts/schemathesis.sh http://127.0.0.1:9292     # the server in noauth mode
#
# A few images (queued, active, deactivated, shared) are made first, and the
# generated image and member ids are drawn from them part of the time, so that
# requests reach more than the 404 of an unknown id.
# Knobs: SCHEMATHESIS_VENV, SCHEMATHESIS_MAX_EXAMPLES (default 50),
#        SCHEMATHESIS_TIMEOUT (default 300), SCHEMATHESIS_SEED (default 1),
#        SCHEMATHESIS_PYTHON.
set -euo pipefail

URL=${1:?usage: $0 URL}
URL=${URL%/}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${SCHEMATHESIS_VENV:-$HOME/.cache/glance-api/venv-schemathesis}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
TIMEOUT=${SCHEMATHESIS_TIMEOUT:-300}
SEED=${SCHEMATHESIS_SEED:-1}
PYTHON=${SCHEMATHESIS_PYTHON:-python3}
CONSTRAINTS=$HERE/schemathesis-constraints.txt

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ensure_venv() { # reinstall only when the venv is broken or the pins changed
    local stamp=$VENV/.glance-schemathesis-stamp want
    want=$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)
    if [[ -x $VENV/bin/schemathesis && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return
    fi
    if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
        [[ -e $VENV && ! -f $VENV/pyvenv.cfg ]] && die "$VENV exists and is not a venv"
        rm -rf "$VENV"
        log "creating venv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    log "pip install schemathesis (pinned by $(basename "$CONSTRAINTS"))"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" schemathesis >&2
    echo "$want" >"$stamp"
}

api() { # METHOD PATH [curl args...]; prints the body, fails on a non-2xx
    local method=$1 path=$2
    shift 2
    curl -fsS --max-time 30 -X "$method" "$URL$path" "$@"
}

new_image() { # prints the id of a new raw/bare image
    api POST /v2/images -H 'Content-Type: application/json' \
        -d '{"name": "schemathesis", "disk_format": "raw", "container_format": "bare", "foo": "bar", "tags": ["t"]}' |
        "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

upload() { api PUT "/v2/images/$1/file" -H 'Content-Type: application/octet-stream' --data-binary 'sixteen bytes...'; }

ensure_venv
curl -fsS --max-time 10 "$URL/versions" >/dev/null || die "no server answers at $URL"

queued=$(new_image)
active=$(new_image)
upload "$active"
shared=$(new_image)
upload "$shared"
api PATCH "/v2/images/$shared" -H 'Content-Type: application/openstack-images-v2.1-json-patch' \
    -d '[{"op": "replace", "path": "/visibility", "value": "shared"}]' >/dev/null
api POST "/v2/images/$shared/members" -H 'Content-Type: application/json' -d '{"member": "tenant-b"}' >/dev/null
deactivated=$(new_image)
upload "$deactivated"
api POST "/v2/images/$deactivated/actions/deactivate" >/dev/null

store=$(api GET /v2/info/stores |
    "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["stores"][0]["id"])')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/schemathesis.toml" <<TOML
[dictionaries.images]
values = ["$queued", "$active", "$shared", "$deactivated"]

[dictionaries.members]
values = ["tenant-b"]

[dictionaries.tags]
values = ["t"]

[dictionaries.stores]
values = ["$store"]

[parameters]
"path.image_id" = { dictionary = "images", probability = 0.7 }
"path.member_id" = { dictionary = "members", probability = 0.7 }
"path.tag_value" = { dictionary = "tags", probability = 0.5 }
"path.store_id" = { dictionary = "stores", probability = 0.7 }
TOML

cd "$work" # schemathesis keeps state in ./.schemathesis
log "running against $URL (at most $MAX_EXAMPLES cases per operation, ${TIMEOUT} s in all)"
# Exit status: schemathesis' own (1 on a failed check), or 124 when the time is up.
rc=0
PYTHONPATH=$HERE SCHEMATHESIS_HOOKS=schemathesis_hooks timeout -k 10 "$TIMEOUT" \
    "$VENV/bin/schemathesis" --config-file "$work/schemathesis.toml" --no-color run \
    "$URL/v2/openapi.json" --url "$URL" \
    --checks not_a_server_error \
    --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
    --workers 2 --request-timeout 30 \
    --generation-database none \
    --report-dir "$work/report" || rc=$?
case $rc in
0) log "no server error" ;;
124 | 137) die "did not finish within ${TIMEOUT} s" ;;
*) die "server errors found (schemathesis exit status $rc); see above" ;;
esac
