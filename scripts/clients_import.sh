#!/usr/bin/env bash
# Interoperable image import, end to end, with the real OpenStack clients
# against any Images API v2 (Glance-compatible) endpoint with no Keystone in
# front of it:
#   1. glance image-create-via-import --file            (glance-direct)
#   2. glance image-create-via-import --import-method web-download --uri
#   3. openstack image create --import --file           (OSC, glance-direct)
#   4. openstacksdk create_image(use_import=True)       (proxy and cloud layer)
#   5. glance image-stage + image-import, then glance image-tasks
#   6. openstack image task list / task show            (legacy /v2/tasks)
#   7. glance image-import --import-method copy-image   (only with COPY_STORES)
# Every import is awaited (polling the image, bounded by IMPORT_TIMEOUT) until
# it is active, then checksum (md5) and os_hash_value (sha512) are compared
# with the local file through the API. Each step prints PASS, FAIL or SKIP;
# the exit code is the number of FAILs (0 = all passed).
#
# usage: clients_import.sh BASE_URL [WEB_BASE]   e.g. http://127.0.0.1:9292
#   WEB_BASE  URL of a directory served over HTTP that holds img.bin, for
#             web-download. Without it the script serves its own work dir with
#             `python3 -m http.server` on WEB_HOST:WEB_PORT; the server under
#             test must then allow that host and port, e.g. in its config:
#               [import_filtering_opts]
#               allowed_hosts = ["127.0.0.1"]
#               allowed_ports = [WEB_PORT]
# env:   CLIENTS_VENV    venv holding the clients (default
#                        ~/.cache/glance-api/clients-venv; created with the
#                        pinned clients if it lacks them)
#        OS_TOKEN        token to send (default "x")
#        WEB_PORT        port for the script's own HTTP server (web-download is
#                        SKIPped when neither WEB_BASE nor WEB_PORT is set)
#        WEB_HOST        address to bind it to and put in the URI (127.0.0.1)
#        IMPORT_TIMEOUT  seconds to wait for each import (default 120)
#        COPY_STORES     comma-separated store ids for copy-image (step 7 is
#                        SKIPped without it; needs a multi-store server)
set -uo pipefail

URL=${1:?usage: clients_import.sh BASE_URL [WEB_BASE]}
URL=${URL%/}
WEB_BASE=${2:-${WEB_BASE:-}}
WEB_BASE=${WEB_BASE%/}
VENV=${CLIENTS_VENV:-$HOME/.cache/glance-api/clients-venv}
TOKEN=${OS_TOKEN:-x}
WEB_HOST=${WEB_HOST:-127.0.0.1}
WEB_PORT=${WEB_PORT:-}
TIMEOUT=${IMPORT_TIMEOUT:-120}
COPY_STORES=${COPY_STORES:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONSTRAINTS="$HERE/../../shared/anchors/glance/constraints.txt"

if ! "$VENV/bin/python" -c 'import glanceclient, openstackclient, openstack' 2>/dev/null; then
  echo "installing the clients into $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || exit 99
  constraints=()
  [ -f "$CONSTRAINTS" ] && constraints=(-c "$CONSTRAINTS")
  "$VENV/bin/pip" install -q "${constraints[@]}" python-glanceclient==4.13.0 \
    python-openstackclient==10.5.0 openstacksdk==4.22.0 >&2 || exit 99
fi

WORK=$(mktemp -d /tmp/clients-import.XXXXXX)
CREATED=()
WEB_PID=""
cleanup() {
  for id in "${CREATED[@]}"; do
    curl -s -o /dev/null -X DELETE -H "X-Auth-Token: $TOKEN" "$URL/v2/images/$id" || true
  done
  [ -n "$WEB_PID" ] && kill "$WEB_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+: $2}"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP $1: $2"; }

api() { curl -s -H "X-Auth-Token: $TOKEN" "$URL$1"; }
jq_py() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
img_field() { api "/v2/images/$1" | jq_py "d.get('$2')" 2>/dev/null; }
# value of a row in glanceclient's table output
tfield() { awk -F'|' -v k="$1" '{f=$2; gsub(/^ +| +$/, "", f)} f==k {v=$3; gsub(/^ +| +$/, "", v); print v; exit}'; }
track() { [ -n "$1" ] && CREATED+=("$1"); }

# wait_active ID -> 0 once the image is active; on failure prints why
wait_active() {
  local id=$1 end=$((SECONDS + TIMEOUT)) st tasks
  while :; do
    st=$(img_field "$id" status)
    [ "$st" = active ] && return 0
    case $st in killed|deleted|deactivated|None|"")
      echo "image status '$st'"; return 1 ;;
    esac
    tasks=$(api "/v2/images/$id/tasks" | jq_py \
      "' '.join(t.get('message') or '?' for t in d.get('tasks', []) if t.get('status') == 'failure')" 2>/dev/null)
    if [ -n "$tasks" ]; then echo "import task failed: $tasks (image $st)"; return 1; fi
    if [ $SECONDS -ge $end ]; then echo "still '$st' after ${TIMEOUT}s"; return 1; fi
    sleep 0.5
  done
}

# check_image ID STEP: wait for active, then compare the hashes the API reports
check_image() {
  local id=$1 step=$2 why cs hv
  if ! why=$(wait_active "$id"); then fail "$step" "$why"; return 1; fi
  cs=$(img_field "$id" checksum); hv=$(img_field "$id" os_hash_value)
  if [ "$cs" = "$MD5" ] && [ "$hv" = "$SHA512" ]; then pass "$step"; return 0; fi
  fail "$step" "active but checksum=$cs os_hash_value=${hv:0:16}... (want $MD5 / ${SHA512:0:16}...)"
  return 1
}

head -c $((2 * 1024 * 1024 + 321)) /dev/urandom > "$WORK/img.bin"
MD5=$(md5sum "$WORK/img.bin" | cut -d' ' -f1)
SHA512=$(sha512sum "$WORK/img.bin" | cut -d' ' -f1)

# glanceclient treats a non-tty stdin as image data ("cannot use both --file
# and stdin", "cannot pass data via stdin with web-download"): close it.
G=("$VENV/bin/glance" --os-image-url "$URL" --os-auth-token "$TOKEN")
glance() { "${G[@]}" "$@" <&-; }
O=("$VENV/bin/openstack" --os-auth-type none --os-endpoint "$URL")
osc() { "${O[@]}" "$@" <&-; }

echo "== python-glanceclient $("${G[0]}" --version 2>&1), $("${O[0]}" --version 2>&1)," \
  "openstacksdk $("$VENV/bin/python" -c 'import openstack.version as v; print(v.__version__)' 2>&1)"
# (the table wraps long values: compare with spaces, bars and dashes removed)
if out=$(glance import-info 2>&1) && flat=$(tr -d ' |\n+-' <<<"$out") \
   && [[ $flat == *glancedirect* && $flat == *webdownload* ]]; then
  pass "glance import-info ($(api /v2/info/import | jq_py "','.join(d['import-methods']['value'])" 2>/dev/null))"
else fail "glance import-info" "glance-direct/web-download not offered: $(tail -2 <<<"$out" | tr '\n' ' ')"; fi

# ------------------------------------------------ 1. glance-direct, one command
S="glance image-create-via-import --file (glance-direct)"
if out=$(glance image-create-via-import --disk-format raw --container-format bare \
          --name import-glance-direct --file "$WORK/img.bin" 2>&1); then
  id=$(tfield id <<<"$out"); track "$id"
  [ -n "$id" ] && check_image "$id" "$S" || { [ -z "$id" ] && fail "$S" "no id in output"; }
else
  id=$(tfield id <<<"$out"); track "$id"
  fail "$S" "$(tail -2 <<<"$out" | tr '\n' ' ')"
fi

# ------------------------------------------------ 2. web-download
S="glance image-create-via-import --import-method web-download"
if [ -z "$WEB_BASE" ] && [ -n "$WEB_PORT" ]; then
  python3 -m http.server --bind "$WEB_HOST" --directory "$WORK" "$WEB_PORT" \
    >"$WORK/http.log" 2>&1 &
  WEB_PID=$!
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://$WEB_HOST:$WEB_PORT/img.bin" && break
    sleep 0.1
  done
  WEB_BASE="http://$WEB_HOST:$WEB_PORT"
  echo "   serving $WORK at $WEB_BASE (the server must allow $WEB_HOST:$WEB_PORT)"
fi
if [ -z "$WEB_BASE" ]; then
  skip "$S" "set WEB_PORT (allowed by the server's [import_filtering_opts]) or pass WEB_BASE"
elif ! curl -sf -o "$WORK/web.bin" "$WEB_BASE/img.bin"; then
  fail "$S" "cannot fetch $WEB_BASE/img.bin from here"
else
  # with a caller's WEB_BASE the reference hashes are those of what it serves
  SAVED=("$MD5" "$SHA512")
  MD5=$(md5sum "$WORK/web.bin" | cut -d' ' -f1)
  SHA512=$(sha512sum "$WORK/web.bin" | cut -d' ' -f1)
  if out=$(glance image-create-via-import --disk-format raw --container-format bare \
            --name import-web-download --import-method web-download \
            --uri "$WEB_BASE/img.bin" 2>&1); then
    id=$(tfield id <<<"$out"); track "$id"
    [ -n "$id" ] && check_image "$id" "$S" || { [ -z "$id" ] && fail "$S" "no id in output"; }
  else
    id=$(tfield id <<<"$out"); track "$id"
    fail "$S" "$(tail -2 <<<"$out" | tr '\n' ' ')"
  fi
  MD5=${SAVED[0]}; SHA512=${SAVED[1]}
fi

# ------------------------------------------------ 3. openstack image create --import
S="openstack image create --import --file"
if out=$(osc image create --import --disk-format raw --container-format bare \
          --file "$WORK/img.bin" -f json import-osc 2>&1); then
  id=$(jq_py "d['id']" <<<"$out" 2>/dev/null); track "$id"
  [ -n "$id" ] && check_image "$id" "$S" || { [ -z "$id" ] && fail "$S" "no id in output"; }
else
  id=$(api "/v2/images?name=import-osc" | jq_py "' '.join(i['id'] for i in d['images'])" 2>/dev/null)
  for i in $id; do track "$i"; done
  fail "$S" "$(tail -2 <<<"$out" | tr '\n' ' ')"
fi

# ------------------------------------------------ 4. openstacksdk use_import
"$VENV/bin/python" - "$URL" "$WORK" "$MD5" "$SHA512" "$TIMEOUT" <<'PY'
import sys, time
import openstack

url, work, md5, sha512, timeout = sys.argv[1:6]
timeout = int(timeout)
conn = openstack.connection.Connection(
    auth_type="none", image_endpoint_override=url, image_api_version="2")
fails = 0
ids = []


def wait_and_check(image):
    # create_image(wait=True) does not wait on the import path (proxy layer),
    # and the cloud layer stops at any status but queued/saving ("importing")
    img = conn.image.wait_for_status(image, "active", failures=["killed"],
                                     interval=0.5, wait=timeout)
    img = conn.image.get_image(img.id)
    if img.checksum == md5 and img.hash_value == sha512 and img.hash_algo == "sha512":
        return True
    print(f"  checksum={img.checksum} hash={img.hash_algo}:{(img.hash_value or '')[:16]}",
          file=sys.stderr)
    return False


def step(name, fn):
    global fails
    try:
        ok = fn()
    except Exception as e:  # noqa: BLE001 - reported as a failure
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:300]}")
        fails += 1
        return
    if ok:
        print(f"PASS {name}")
    else:
        print(f"FAIL {name}")
        fails += 1


def proxy():
    img = conn.image.create_image(
        "import-sdk-proxy", filename=f"{work}/img.bin", disk_format="raw",
        container_format="bare", use_import=True, wait=True)
    ids.append(img.id)
    return wait_and_check(img)


def cloud():
    img = conn.create_image(
        "import-sdk-cloud", filename=f"{work}/img.bin", disk_format="raw",
        container_format="bare", use_import=True, wait=True, timeout=timeout)
    ids.append(img.id)
    return wait_and_check(img)


step("sdk image.create_image(use_import=True)", proxy)
step("sdk conn.create_image(use_import=True)", cloud)
with open(f"{work}/sdk_ids", "w") as f:
    f.write("\n".join(ids))
sys.exit(fails)
PY
rc=$?
FAILS=$((FAILS + rc))
[ -f "$WORK/sdk_ids" ] && while read -r i; do track "$i"; done <"$WORK/sdk_ids"
# the sdk deletes its image on a failed upload; catch any it left behind
for i in $(api "/v2/images?name=import-sdk-proxy" | jq_py "' '.join(i['id'] for i in d['images'])" 2>/dev/null) \
         $(api "/v2/images?name=import-sdk-cloud" | jq_py "' '.join(i['id'] for i in d['images'])" 2>/dev/null); do
  [[ " ${CREATED[*]} " == *" $i "* ]] || track "$i"
done

# ------------------------------------------------ 5. stage + import as two steps
SID=""
if out=$(glance image-create --disk-format raw --container-format bare \
          --name import-staged 2>&1); then
  SID=$(tfield id <<<"$out"); track "$SID"
fi
if [ -z "$SID" ]; then
  fail "glance image-create (queued, for staging)" "$(tail -2 <<<"$out" | tr '\n' ' ')"
else
  if out=$(glance image-stage --file "$WORK/img.bin" "$SID" 2>&1) \
     && [ "$(img_field "$SID" status)" = uploading ]; then
    pass "glance image-stage (image now uploading)"
  else fail "glance image-stage" "$(tail -2 <<<"$out" | tr '\n' ' ') status=$(img_field "$SID" status)"; fi

  if out=$(glance image-import --import-method glance-direct "$SID" 2>&1); then
    check_image "$SID" "glance image-import --import-method glance-direct"
  else fail "glance image-import --import-method glance-direct" "$(tail -2 <<<"$out" | tr '\n' ' ')"; fi

  # the image's task: through the API, then through the client's table
  TASK=$(api "/v2/images/$SID/tasks" | jq_py \
    "' '.join(t['id'] for t in d['tasks'] if t.get('type') == 'api_image_import' and t.get('status') == 'success' and t.get('image_id') == '$SID')" 2>/dev/null)
  if out=$(glance --verbose image-tasks "$SID" 2>&1) && [ -n "$TASK" ] \
     && grep -q "$TASK" <<<"$out" && grep -qw success <<<"$out"; then
    pass "glance image-tasks (api_image_import task $TASK success)"
  else
    fail "glance image-tasks" "api task='${TASK}' client: $(tail -3 <<<"$out" | tr '\n' ' ' | cut -c1-300)"
  fi
fi

# ------------------------------------------------ 6. legacy tasks API via OSC
IDS=$(for i in "${CREATED[@]}"; do
        api "/v2/images/$i/tasks" | jq_py "' '.join(t['id'] for t in d.get('tasks', []))" 2>/dev/null
      done | tr -s ' \n' ' ')
if out=$(osc image task list -f json 2>&1); then
  missing=""
  for t in $IDS; do grep -q "$t" <<<"$out" || missing="$missing $t"; done
  types=$(jq_py "sorted({t['Type'] for t in d})" <<<"$out" 2>/dev/null)
  if [ -z "$IDS" ]; then fail "openstack image task list" "no import task recorded to look for"
  elif [ -z "$missing" ]; then pass "openstack image task list (all $(wc -w <<<"$IDS") import tasks, types $types)"
  else fail "openstack image task list" "succeeded but lacks task(s)$missing"; fi
else fail "openstack image task list" "$(tail -2 <<<"$out" | tr '\n' ' ')"; fi

T1=${TASK:-${IDS%% *}}
if [ -n "$T1" ] && out=$(osc image task show -f json "$T1" 2>&1) \
   && [ "$(jq_py "d['status']" <<<"$out")" = success ] \
   && [ "$(jq_py "d['type']" <<<"$out")" = api_image_import ]; then
  pass "openstack image task show"
else fail "openstack image task show" "$(tail -2 <<<"${out:-no task}" | tr '\n' ' ' | cut -c1-300)"; fi

if out=$(glance task-list 2>&1) && [ -n "$T1" ] && grep -q "$T1" <<<"$out"; then
  pass "glance task-list"
else fail "glance task-list" "$(tail -2 <<<"$out" | tr '\n' ' ' | cut -c1-300)"; fi

# ------------------------------------------------ 7. copy-image
S="glance image-import --import-method copy-image --stores $COPY_STORES"
if [ -z "$COPY_STORES" ]; then
  skip "glance image-import --import-method copy-image" "set COPY_STORES (needs several stores)"
elif [ -z "$SID" ] || [ "$(img_field "$SID" status)" != active ]; then
  fail "$S" "no active image to copy"
elif out=$(glance image-import --import-method copy-image --stores "$COPY_STORES" "$SID" 2>&1); then
  end=$((SECONDS + TIMEOUT)); ok=""
  while [ $SECONDS -lt $end ]; do
    stores=$(img_field "$SID" stores)
    inflight=$(img_field "$SID" os_glance_importing_to_stores)
    failed=$(img_field "$SID" os_glance_failed_import)
    all=1
    for s in ${COPY_STORES//,/ }; do [[ ",$stores," == *",$s,"* ]] || all=""; done
    [ -n "$all" ] && [ -z "$inflight" ] && { ok=1; break; }
    [ -n "$failed" ] && [ "$failed" != None ] && break
    sleep 0.5
  done
  if [ -n "$ok" ] && [ "$(img_field "$SID" status)" = active ]; then pass "$S (stores now $stores)"
  else fail "$S" "stores=$stores importing=$inflight failed=$failed"; fi
else fail "$S" "$(tail -2 <<<"$out" | tr '\n' ' ')"; fi

echo "== $FAILS failure(s)"
exit $((FAILS > 99 ? 99 : FAILS))
