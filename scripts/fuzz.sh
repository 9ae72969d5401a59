#!/usr/bin/env bash
# Fuzz the parsers of untrusted input (fuzz/: JSON patch, list query, Range header,
# policy rules, disk image format inspection) with cargo-fuzz for a bounded time each; any panic, overflow,
# stack overflow or hang fails with the input that caused it.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 25)
#
# Needs a nightly toolchain (installed with rustup if missing) and cargo-fuzz
# (installed into ~/.cargo/bin if missing). The build (dev profile, no sanitizer:
# the targets are safe Rust; the targets link the server crate, so a cold build
# compiles its whole dependency tree once) and the corpus
# live under ~/.cache/glance-api, so later runs start warm and where the last
# one stopped.
# Knobs: FUZZ_TARGET_DIR, FUZZ_CORPUS_DIR, FUZZ_TOOLCHAIN (default nightly).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_TARGET=${1:-25}
TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/glance-api/fuzz-target}
CORPUS=${FUZZ_CORPUS_DIR:-$HOME/.cache/glance-api/fuzz-corpus}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
CARGO_FUZZ_VERSION=0.13.2

log() { printf 'fuzz.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    log "installing the $TOOLCHAIN toolchain"
    rustup toolchain install "$TOOLCHAIN" --profile minimal >&2
fi
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    # Its own temporary target dir, not the caller's.
    env -u CARGO_TARGET_DIR cargo install --locked --force cargo-fuzz --version "$CARGO_FUZZ_VERSION" >&2
fi

cd "$ROOT/fuzz"
fuzz() { cargo "+$TOOLCHAIN" fuzz "$1" --dev --sanitizer none --target-dir "$TARGET_DIR" "${@:2}"; }
log "building the fuzz targets"
fuzz build >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for target in $(cargo "+$TOOLCHAIN" fuzz list); do
    mkdir -p "$CORPUS/$target" "$work/artifacts/$target"
    # New inputs go to the first corpus dir; seeds/ is read only.
    if fuzz run "$target" "$CORPUS/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -dict="dicts/$target.dict" -artifact_prefix="$work/artifacts/$target/" \
        >"$work/$target.log" 2>&1; then
        log "$target: $(grep -E '^Done [0-9]+ runs' "$work/$target.log" | tail -1), no crash"
    else
        failed+=("$target")
        log "$target: FAILED; the end of its log:"
        tail -n 60 "$work/$target.log" >&2
        for input in "$work/artifacts/$target"/*; do
            [[ -f $input ]] || continue
            log "input that fails ($(basename "$input")), as hex:"
            od -A x -t x1z -v "$input" | head -n 40 >&2
            keep=artifacts/$target/$(basename "$input")
            mkdir -p "artifacts/$target" && cp "$input" "$keep" &&
                log "kept as fuzz/$keep; reproduce: cd fuzz && cargo +$TOOLCHAIN fuzz run --dev -s none $target $keep"
        done
    fi
done
((${#failed[@]} == 0)) || die "crashes in: ${failed[*]}"
