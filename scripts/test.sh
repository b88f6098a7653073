#!/usr/bin/env bash
# The whole test suite: every crate's tests on the embedded store, then the MongoDB
# tests and the end-to-end API tests again with nosqlsvc on a real MongoDB
# wire-protocol server (FerretDB, built by scripts/ferretdb.sh when missing), then
# Schemathesis against a whole stack (scripts/schemathesis.sh, installed when missing).
# Last, the pages in headless Chromium (scripts/browser_test.py, over chromedriver).
#
# Everything is built once, in the release profile that `cargo run --release` (the
# README's first command) already built, so the dependencies are not compiled again.
# FerretDB is built while the tests compile.
#
# Outside CI, a missing chromium/chromedriver makes the browser tests skip loudly, and a
# FerretDB or a Schemathesis that cannot be installed makes that part skip loudly;
# under CI=true it is a failure.
#
# The tests that need FerretDB, and those that need root and iproute2 (emulated hosts,
# named emulated_hosts_*), are #[ignore]d with the reason, so a plain `cargo test`
# lists them as ignored, never as passed; this script runs them with `--ignored` where
# they can run. Outside CI, a FerretDB that cannot be built or started, or no root,
# makes that part skip loudly (and counted); under CI=true it is a failure.
#
# Arguments go to every test binary, e.g. `scripts/test.sh --test-threads=1`.
set -euo pipefail
cd "$(dirname "$0")/.."

ci="${CI:-false}"
target_dir="${CARGO_TARGET_DIR:-target}"
fdb_dir="$(mktemp -d "${TMPDIR:-/tmp}/pastebin-ferretdb.XXXXXX")"
fdb_install_pid=""
shots_dir="$(mktemp -d "${TMPDIR:-/tmp}/pastebin-screenshots.XXXXXX")"
cleanup() {
    [ -n "$fdb_install_pid" ] && kill "$fdb_install_pid" 2>/dev/null
    scripts/ferretdb.sh stop "$fdb_dir" >/dev/null 2>&1 || true
    rm -rf "$fdb_dir" "$shots_dir"
}
trap cleanup EXIT

skipped=()
missing() { # what, why
    if [ "$ci" = "true" ]; then
        echo "test.sh: $1 unavailable ($2), and CI=true: failing" >&2
        exit 1
    fi
    echo "test.sh: ******** $1 unavailable ($2): its tests will be SKIPPED ********" >&2
    skipped+=("$1")
}

# Build FerretDB (Go, about 2 minutes the first time) while cargo compiles.
scripts/ferretdb.sh install >"$fdb_dir/install.out" 2>"$fdb_dir/install.err" &
fdb_install_pid=$!

echo "test.sh: cargo test --release --workspace --all-targets --no-run"
cargo test --release --workspace --all-targets --no-run

mongo_ready=false
if wait "$fdb_install_pid" && ferretdb_bin="$(tail -n 1 "$fdb_dir/install.out")" \
    && uri="$(scripts/ferretdb.sh start "$fdb_dir" | tail -n 1)"; then
    export PASTEBIN_TEST_MONGODB_URI="$uri"
    export PASTEBIN_FERRETDB_BIN="$ferretdb_bin"
    mongo_ready=true
    echo "test.sh: FerretDB at $uri ($ferretdb_bin)"
else
    cat "$fdb_dir/install.err" >&2
    missing FerretDB "could not be built or started"
fi
fdb_install_pid=""

# Emulated hosts make network namespaces and cgroups: root and `ip` (iproute2).
emulate_ready=false
if [ "$(id -u)" = "0" ] && ip -V >/dev/null 2>&1; then
    emulate_ready=true
else
    missing "emulated hosts" "they need root and iproute2's ip"
fi

echo "test.sh: cargo test (embedded store; tests needing FerretDB or root are ignored here)"
cargo test --release --workspace --all-targets -- "$@"

# The ignored tests this machine can run: those needing FerretDB, those needing root
# (named emulated_hosts_*), or both. (Ignored benchmarks are named bench_*: figures,
# not checks; never run here.)
count_ignored() { # test-binary arguments selecting ignored tests
    cargo test --release --workspace --all-targets -- --list --ignored "$@" 2>/dev/null | grep -c ': test$' || true
}
if [ "$mongo_ready" = "true" ] && [ "$emulate_ready" = "true" ]; then
    echo "test.sh: the ignored tests that need FerretDB or root (MongoDB backend, FerretDB restart, emulated hosts)"
    cargo test --release --workspace --all-targets -- --ignored --skip bench_ "$@"
elif [ "$mongo_ready" = "true" ]; then
    echo "test.sh: the ignored tests that need FerretDB (MongoDB backend, FerretDB restart)"
    cargo test --release --workspace --all-targets -- --ignored --skip bench_ --skip emulated_hosts_ "$@"
    echo "test.sh: ******** SKIPPED: $(count_ignored emulated_hosts_) tests that need root (emulated hosts) ********" >&2
elif [ "$emulate_ready" = "true" ]; then
    echo "test.sh: the ignored tests that need root (emulated hosts)"
    cargo test --release --workspace --all-targets -- --ignored emulated_hosts_ "$@"
    echo "test.sh: ******** SKIPPED: $(count_ignored --skip bench_ --skip emulated_hosts_) tests that need FerretDB ********" >&2
else
    echo "test.sh: ******** SKIPPED: $(count_ignored --skip bench_) tests that need FerretDB or root ********" >&2
fi

if [ "$mongo_ready" = "true" ]; then
    echo "test.sh: end-to-end API tests again, nosqlsvc on MongoDB (FerretDB)"
    PASTEBIN_TEST_NOSQL=mongodb cargo test --release -p stacktests --test api -- "$@"
    echo "test.sh: the size matrix again, nosqlsvc on MongoDB (16 MiB documents)"
    PASTEBIN_TEST_NOSQL=mongodb cargo test --release -p stacktests --test hardening size_matrix -- "$@"
else
    echo "test.sh: ******** SKIPPED: the API tests and the size matrix on MongoDB ********" >&2
fi

if scripts/schemathesis.sh install >/dev/null; then
    echo "test.sh: Schemathesis against a whole stack"
    scripts/schemathesis.sh run "$target_dir/release/pastebin"
else
    missing Schemathesis "python3 -m venv or pip install failed"
fi

# The release binary the integration tests ran; screenshots go to a scratch directory
# here (`--screenshots docs` refreshes the README's).
echo "test.sh: the pages in headless Chromium (scripts/browser_test.py)"
browser_status=0
python3 scripts/browser_test.py --bin "$target_dir/release/pastebin" --screenshots "$shots_dir" \
    || browser_status=$?
if [ "$browser_status" = "77" ]; then
    skipped+=("browser tests")
elif [ "$browser_status" != "0" ]; then
    exit "$browser_status"
fi

if [ "${#skipped[@]}" -gt 0 ]; then
    echo "test.sh: passed, but ******** SKIPPED: ${skipped[*]} ********" >&2
else
    echo "test.sh: all tests passed"
fi
