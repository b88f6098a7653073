#!/usr/bin/env bash
# The whole test suite: every crate's tests on the embedded store, then the MongoDB
# tests and the end-to-end API tests again with nosqlsvc on a real MongoDB
# wire-protocol server (FerretDB, built by scripts/ferretdb.sh when missing).
#
# The tests that need FerretDB are #[ignore]d with the reason, so a plain `cargo test`
# lists them as ignored, never as passed; this script runs them with `--ignored` once
# FerretDB is up. Outside CI, a FerretDB that cannot be built or started makes that
# part skip loudly (and counted); under CI=true it is a failure.
#
# Arguments go to every test binary, e.g. `scripts/test.sh --test-threads=1`.
set -euo pipefail
cd "$(dirname "$0")/.."

ci="${CI:-false}"
fdb_dir="$(mktemp -d "${TMPDIR:-/tmp}/pastebin-ferretdb.XXXXXX")"
cleanup() {
    scripts/ferretdb.sh stop "$fdb_dir" >/dev/null 2>&1 || true
    rm -rf "$fdb_dir"
}
trap cleanup EXIT

mongo_ready=false
if ferretdb_bin="$(scripts/ferretdb.sh install | tail -n 1)" \
    && uri="$(scripts/ferretdb.sh start "$fdb_dir" | tail -n 1)"; then
    export PASTEBIN_TEST_MONGODB_URI="$uri"
    export PASTEBIN_FERRETDB_BIN="$ferretdb_bin"
    mongo_ready=true
    echo "test.sh: FerretDB at $uri ($ferretdb_bin)"
elif [ "$ci" = "true" ]; then
    echo "test.sh: FerretDB could not be installed or started, and CI=true: failing" >&2
    exit 1
else
    echo "test.sh: ******** FerretDB unavailable: MongoDB tests will be SKIPPED ********" >&2
fi

echo "test.sh: cargo test --workspace (embedded store; tests needing FerretDB are ignored here)"
cargo test --workspace --all-targets -- "$@"

if [ "$mongo_ready" = "true" ]; then
    echo "test.sh: the ignored tests that need FerretDB (MongoDB backend, FerretDB restart)"
    # (Ignored benchmarks are named bench_*: figures, not checks; not run here.)
    cargo test --workspace --all-targets -- --ignored --skip bench_ "$@"
    echo "test.sh: end-to-end API tests again, nosqlsvc on MongoDB (FerretDB)"
    PASTEBIN_TEST_NOSQL=mongodb cargo test -p pastebin --test api -- "$@"
    echo "test.sh: the size matrix again, nosqlsvc on MongoDB (16 MiB documents)"
    PASTEBIN_TEST_NOSQL=mongodb cargo test -p pastebin --test hardening size_matrix -- "$@"
    echo "test.sh: all tests passed, none skipped"
else
    skipped="$(cargo test --workspace --all-targets -- --list --ignored --skip bench_ 2>/dev/null | grep -c ': test$' || true)"
    echo "test.sh: ******** SKIPPED: $skipped tests that need FerretDB, and the API tests on MongoDB ********" >&2
    echo "test.sh: all tests that ran passed; $skipped SKIPPED (no FerretDB)"
fi
