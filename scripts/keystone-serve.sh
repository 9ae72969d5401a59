#!/usr/bin/env bash
# Run an extra instance of the Keystone set up by `scripts/keystone.sh start`
# (same keystone.conf, database and fernet keys) on PORT, in the foreground.
# It execs gunicorn, so the child's pid is the gunicorn master: tests can kill
# it (TERM or KILL) to simulate Keystone going down, and spawn it again.
#   scripts/keystone-serve.sh 5001
set -euo pipefail
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/keystone.sh" serve "$@"
