#!/usr/bin/env bash
# Install, configure and run a real OpenStack Keystone on 127.0.0.1 for
# integration tests and CI, with fixture projects, users, roles, an `image`
# service/endpoint and Glance's registered (unified) limits.
#
#   scripts/keystone.sh start        # install if needed, run, fixtures; prints `export` lines
#   scripts/keystone.sh stop         # stop the instance started by `start`
#   scripts/keystone.sh env          # print the `export` lines again
#   scripts/keystone.sh serve PORT   # extra instance (same conf/db/keys) in the foreground
#
#   eval "$(scripts/keystone.sh start)"
#
# Only the `export` lines go to stdout; progress goes to stderr.
# Knobs: KEYSTONE_VENV, KEYSTONE_DIR, KEYSTONE_PORT, KEYSTONE_ADMIN_PASSWORD,
#        KEYSTONE_WORKERS, KEYSTONE_PYTHON, GLANCE_ENDPOINT_URL,
#        KEYSTONE_DB_URL (SQLAlchemy URL of Keystone's database, created if
#        missing; default the machine's MariaDB, `sqlite` for a local file).
#
# Keystone's database is MariaDB, as deployments run it: several gunicorn workers
# over one SQLite file fail now and then with "database is locked". Without a
# reachable MariaDB (and CI unset) it falls back to SQLite with a single sync
# worker, which cannot race with itself, and says so in one line.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${KEYSTONE_VENV:-$HOME/.cache/glance-api/venv-keystone}
STATE=${KEYSTONE_DIR:-$HOME/.cache/glance-api/keystone}
PORT=${KEYSTONE_PORT:-5000}
ADMIN_PASSWORD=${KEYSTONE_ADMIN_PASSWORD:-admin-secret}
WORKERS=${KEYSTONE_WORKERS:-2}
DB_URL=${KEYSTONE_DB_URL:-mysql+pymysql://root@127.0.0.1:3306/keystone_glance_test}
PYTHON=${KEYSTONE_PYTHON:-python3}
GLANCE_URL=${GLANCE_ENDPOINT_URL:-http://127.0.0.1:9292}
CONSTRAINTS=$SCRIPT_DIR/keystone-constraints.txt
CONF=$STATE/keystone.conf
PIDFILE=$STATE/gunicorn.pid
ENVFILE=$STATE/env.sh
URL=http://127.0.0.1:$PORT

log() { printf 'keystone.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

healthy() { # $1 = port; Keystone answers GET /v3 with its version document
    curl -fsS --max-time 3 "http://127.0.0.1:$1/v3" 2>/dev/null | grep -q '"id": *"v3'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { # not `kill -0`: orphans stay zombies here for >1 s until init reaps them
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [[ ${st:0:1} != Z ]]
}

ensure_venv() {
    # Reinstall only when the venv is broken or the pins changed.
    local stamp want
    stamp=$VENV/.glance-keystone-stamp
    want=$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)
    # Metadata lookup, not `import keystone` (that alone takes ~1.5 s).
    if [[ -x $VENV/bin/gunicorn && -f $stamp && $(cat "$stamp") == "$want" ]] &&
        "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("keystone"); m.version("gunicorn"); m.version("PyMySQL")' 2>/dev/null; then
        return
    fi
    if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
        # Only wipe something that is recognisably a venv.
        [[ -e $VENV && ! -f $VENV/pyvenv.cfg ]] && die "$VENV exists and is not a venv"
        rm -rf "$VENV"
        log "creating venv $VENV ($("$PYTHON" --version 2>&1))"
        "$PYTHON" -m venv "$VENV"
    fi
    log "pip install keystone gunicorn PyMySQL (pinned by $(basename "$CONSTRAINTS"))"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -c "$CONSTRAINTS" keystone gunicorn PyMySQL >&2
    echo "$want" >"$stamp"
}

sqlite_fallback() { # $1 = why; the one line a developer sees about it
    CONNECTION=sqlite:///$STATE/keystone.db
    WORKERS=1
    printf 'keystone.sh: NOTE: %s: Keystone runs on SQLite with one worker\n' "$1" >&2
}

choose_db() { # sets CONNECTION (and WORKERS for SQLite)
    if [[ $DB_URL == sqlite ]]; then
        sqlite_fallback "KEYSTONE_DB_URL=sqlite"
        return
    fi
    local out
    # Creates the database if missing; prints whether it had to.
    if out=$(KS_DB_URL=$DB_URL "$VENV/bin/python" - 2>&1 <<'PY'
import os, sys
import pymysql
from sqlalchemy.engine import make_url

u = make_url(os.environ["KS_DB_URL"])
if not u.drivername.startswith("mysql") or not u.database:
    sys.exit(f"KEYSTONE_DB_URL must be mysql+pymysql://user[:password]@host[:port]/name")
host, port = u.host or "127.0.0.1", u.port or 3306
try:
    conn = pymysql.connect(host=host, port=port, user=u.username or "root",
                           password=u.password or "", connect_timeout=3)
except pymysql.Error as e:
    sys.exit(f"MariaDB at {host}:{port} is unreachable ({e.args[-1] if e.args else e})")
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                (u.database,))
    existed = cur.fetchone() is not None
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{u.database}` CHARACTER SET utf8mb4")
print("exists" if existed else "created")
PY
    ); then
        CONNECTION=$DB_URL
        if [[ ${out##*$'\n'} == created ]]; then
            # A new database: whatever the stamps say, it needs db_sync and fixtures.
            log "created Keystone's database ${DB_URL##*/}"
            rm -f "$STATE/.bootstrapped" "$STATE/.fixtures"
        fi
    elif [[ -n ${CI:-} ]]; then
        die "${out##*$'\n'}; CI runs Keystone on MariaDB only"
    else
        sqlite_fallback "${out##*$'\n'}"
    fi
}

write_conf() {
    mkdir -p "$STATE"
    # The WSGI entry point: keystone's app parses sys.argv with oslo.config at
    # import time, which chokes on gunicorn's own argv; hide it. PDEATHSIG makes
    # workers die with the master, so killing the master (even SIGKILL) closes
    # the port at once instead of orphaned workers serving for ~15 s more.
    cat >"$STATE/keystone_wsgi.py" <<'EOF'
import ctypes, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
EOF
    cat >"$CONF" <<EOF
# Generated by scripts/keystone.sh; rewritten on every start.
[DEFAULT]
log_file = $STATE/keystone.log
debug = false

[database]
connection = $CONNECTION
# Test data only: trade durability for speed (SQLite only).
sqlite_synchronous = false

[token]
provider = fernet

[fernet_tokens]
key_repository = $STATE/fernet-keys

[fernet_receipts]
key_repository = $STATE/fernet-keys

[credential]
key_repository = $STATE/credential-keys

[identity]
# bcrypt's minimum cost: every password auth costs ~1 ms instead of ~250 ms.
password_hash_rounds = 4
EOF
}

manage() { # keystone-manage, quiet unless it fails (eventlet warns loudly)
    if ! "$VENV/bin/keystone-manage" --config-file "$CONF" "$@" >"$STATE/manage.log" 2>&1; then
        tail -n 30 "$STATE/manage.log" >&2
        die "keystone-manage $1 failed"
    fi
}

init_db() {
    local stamp=$STATE/.bootstrapped want
    want=$(printf '%s|%s|%s' "$PORT" "$ADMIN_PASSWORD" "$CONNECTION" | sha256sum | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]] &&
        [[ $CONNECTION != sqlite* || -f $STATE/keystone.db ]]; then
        return
    fi
    log "db_sync, fernet/credential keys, bootstrap"
    rm -f "$STATE/.fixtures" # a new or re-bootstrapped db needs fixtures again
    manage db_sync
    # Key repositories must exist before the first token; setup is a no-op
    # if keys are already there (keeps tokens valid across restarts).
    [[ -f $STATE/fernet-keys/0 ]] || manage fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    [[ -f $STATE/credential-keys/0 ]] || manage credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    # bootstrap is idempotent; rerun when port or admin password changed.
    manage bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
        --bootstrap-admin-url "$URL/v3" --bootstrap-internal-url "$URL/v3" \
        --bootstrap-public-url "$URL/v3" --bootstrap-region-id RegionOne
    echo "$want" >"$stamp"
}

serve() { # foreground, exec'd so the caller's child pid IS the gunicorn master
    local port=${1:?usage: $0 serve PORT}
    [[ -f $CONF && -x $VENV/bin/gunicorn ]] || die "not initialised; run '$0 start' first"
    # SQLite (the fallback) takes a single worker: two processes over one file
    # are what fails with "database is locked".
    grep -q '^connection = sqlite' "$CONF" && WORKERS=1
    cd "$STATE"
    OS_KEYSTONE_CONFIG_FILES=$CONF exec "$VENV/bin/gunicorn" \
        --pythonpath "$STATE" --bind "127.0.0.1:$port" \
        --workers "$WORKERS" --graceful-timeout 5 --timeout 60 \
        --name "keystone-$port" keystone_wsgi:application
}

fixtures() {
    # Skip on warm starts: same db, same inputs, same script => same result.
    local want
    want=$(cat "$SCRIPT_DIR/keystone.sh" - <<<"$URL|$ADMIN_PASSWORD|$GLANCE_URL" | sha256sum | cut -d' ' -f1)
    if [[ -f $ENVFILE && -f $STATE/.fixtures && $(cat "$STATE/.fixtures") == "$want" ]]; then
        log "fixtures already in place"
        return
    fi
    log "fixtures (projects, users, roles, image service/endpoint, registered limits)"
    KS_URL=$URL KS_ADMIN_PASSWORD=$ADMIN_PASSWORD KS_GLANCE_URL=$GLANCE_URL \
        "$VENV/bin/python" - >"$ENVFILE.ids" <<'PY'
import json, os, sys, urllib.error, urllib.request

URL = os.environ["KS_URL"] + "/v3"

def call(method, path, body=None, token=None, ok=(200, 201, 204)):
    req = urllib.request.Request(URL + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
            return r.status, r.headers, (json.loads(data) if data else None)
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, e.headers, None
        sys.exit(f"{method} {path}: HTTP {e.code}: {e.read().decode()[:500]}")

# System-scoped admin token: the default policies want system scope for
# registered limits and catalog writes.
_, h, _ = call("POST", "/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"},
        "password": os.environ["KS_ADMIN_PASSWORD"]}}},
    "scope": {"system": {"all": True}}}})
T = h["X-Subject-Token"]

def find(coll, key, **q):
    qs = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in q.items())
    return call("GET", f"/{coll}?{qs}", token=T)[2][key]

def ensure(coll, key, query, body):
    found = find(coll, coll, **query)
    if found:
        return found[0]["id"]
    return call("POST", f"/{coll}", {key: body}, token=T)[2][key]["id"]

assert find("domains", "domains", name="Default"), "domain Default missing"
proj = {n: ensure("projects", "project", {"name": n, "domain_id": "default"},
                  {"name": n, "domain_id": "default", "enabled": True})
        for n in ("admin", "service", "glance-a", "glance-b")}
role = {n: ensure("roles", "role", {"name": n}, {"name": n})
        for n in ("admin", "member", "reader", "service")}

def user(name, password="secret"):
    # Only set the password on create: resetting it would revoke the user's
    # outstanding tokens on every start.
    return ensure("users", "user", {"name": name, "domain_id": "default"},
                  {"name": name, "domain_id": "default", "enabled": True,
                   "password": password})

def grant(u, project, r):  # PUT is idempotent
    call("PUT", f"/projects/{proj[project]}/users/{u}/roles/{role[r]}", token=T)

admin = find("users", "users", name="admin", domain_id="default")[0]["id"]
grant(admin, "admin", "admin")
grant(admin, "glance-a", "admin")
glance = user("glance")
grant(glance, "service", "admin")
grant(glance, "service", "service")
# oslo.limit (unified limits) reads endpoints and other projects' limits,
# which the default policies allow to system readers only.
call("PUT", f"/system/users/{glance}/roles/{role['reader']}", token=T)
for name, project, r in (("alice", "glance-a", "member"), ("rita", "glance-a", "reader"),
                         ("bob", "glance-b", "member"), ("boss", "glance-b", "admin")):
    grant(user(name), project, r)

svc = ensure("services", "service", {"type": "image"},
             {"type": "image", "name": "glance", "enabled": True})
gurl = os.environ["KS_GLANCE_URL"]
eps = find("endpoints", "endpoints", service_id=svc, interface="public", region_id="RegionOne")
if eps:
    ep = eps[0]["id"]
    if eps[0]["url"] != gurl:
        call("PATCH", f"/endpoints/{ep}", {"endpoint": {"url": gurl}}, token=T)
else:
    ep = call("POST", "/endpoints", {"endpoint": {
        "service_id": svc, "interface": "public", "region_id": "RegionOne",
        "url": gurl, "enabled": True}}, token=T)[2]["endpoint"]["id"]

# Glance's unified-limit resource names; sizes are MiB.
limits = {"image_size_total": 1000, "image_stage_total": 1000,
          "image_count_total": 100, "image_count_uploading": 10}
for res, val in limits.items():
    have = find("registered_limits", "registered_limits", service_id=svc,
                region_id="RegionOne", resource_name=res)
    if not have:
        call("POST", "/registered_limits", {"registered_limits": [{
            "service_id": svc, "region_id": "RegionOne",
            "resource_name": res, "default_limit": val}]}, token=T)
    elif have[0]["default_limit"] != val:
        call("PATCH", f"/registered_limits/{have[0]['id']}",
             {"registered_limit": {"default_limit": val}}, token=T)

print(f"{ep} {svc}")
PY
    local ep svc
    read -r ep svc <"$ENVFILE.ids"
    rm -f "$ENVFILE.ids"
    log "image service $svc, public endpoint $ep -> $GLANCE_URL"
    {
        printf 'export KEYSTONE_URL=%q\n' "$URL"
        printf 'export KEYSTONE_ADMIN_PASSWORD=%q\n' "$ADMIN_PASSWORD"
        printf 'export KEYSTONE_IMAGE_ENDPOINT_ID=%q\n' "$ep"
        printf 'export KEYSTONE_IMAGE_SERVICE_ID=%q\n' "$svc"
        printf 'export KEYSTONE_VENV=%q\n' "$VENV"
        printf 'export KEYSTONE_DIR=%q\n' "$STATE"
    } >"$ENVFILE"
    echo "$want" >"$STATE/.fixtures"
}

start() {
    # Fast path: already serving and fixtures done for this port/password.
    if healthy "$PORT" && [[ -f $ENVFILE ]] && grep -qxF "export KEYSTONE_URL=$URL" "$ENVFILE" &&
        grep -qxF "export KEYSTONE_ADMIN_PASSWORD=$(printf '%q' "$ADMIN_PASSWORD")" "$ENVFILE"; then
        log "already running at $URL"
        cat "$ENVFILE"
        return
    fi
    command -v curl >/dev/null || die "curl is required"
    ensure_venv
    mkdir -p "$STATE"
    choose_db
    write_conf
    if ! healthy "$PORT"; then
        port_open "$PORT" && die "port $PORT is taken by something that is not Keystone"
        init_db
        log "starting gunicorn on $URL (log: $STATE/gunicorn.log, $STATE/keystone.log)"
        # setsid: own session/process group, so it outlives the calling shell
        # or CI step's process group; $! is the gunicorn master (serve execs).
        # 9>&-: the server must not inherit (and hold) the start/stop lock.
        setsid "$SCRIPT_DIR/keystone.sh" serve "$PORT" >>"$STATE/gunicorn.log" 2>&1 </dev/null 9>&- &
        echo $! >"$PIDFILE"
        local i
        for ((i = 0; i < 120; i++)); do
            healthy "$PORT" && break
            alive "$(cat "$PIDFILE")" || break
            sleep 0.5
        done
        if ! healthy "$PORT"; then
            log "Keystone did not come up (gunicorn exited, or no 200 from $URL/v3 within 60 s); log tails:"
            tail -n 40 "$STATE/gunicorn.log" >&2 || true
            tail -n 20 "$STATE/keystone.log" >&2 2>/dev/null || true
            stop || true
            exit 1
        fi
    else
        init_db
    fi
    fixtures
    cat "$ENVFILE"
}

stop() {
    local pid i
    if [[ ! -f $PIDFILE ]]; then
        log "no pid file ($PIDFILE); nothing to stop"
        return 0
    fi
    pid=$(cat "$PIDFILE")
    # Guard against a recycled pid: only signal our gunicorn.
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q gunicorn; then
        log "stopping gunicorn master $pid"
        # QUIT = gunicorn's quick shutdown: port closed in ~0.4 s vs ~1-3 s for TERM.
        kill -QUIT "$pid"
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        # Still there after 10 s: kill master and workers (own process group).
        if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    fi
    rm -f "$PIDFILE"
    for ((i = 0; i < 100; i++)); do
        port_open "$PORT" || { log "stopped; port $PORT closed"; return 0; }
        sleep 0.1
    done
    die "port $PORT still open after stop"
}

lock() { # serialise concurrent start/stop (e.g. parallel test binaries)
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "timed out waiting for $STATE/.lock"
}

case ${1:-} in
start) lock; start ;;
stop) lock; stop ;;
env) [[ -f $ENVFILE ]] || die "no $ENVFILE; run '$0 start'"; cat "$ENVFILE" ;;
serve) shift; serve "$@" ;;
*) echo "usage: $0 start|stop|env|serve PORT" >&2; exit 2 ;;
esac
