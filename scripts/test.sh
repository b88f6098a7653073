#!/usr/bin/env bash
# The whole test suite: every crate's tests on the embedded store, then the MongoDB
# tests and the end-to-end API tests again with nosqlsvc on a real MongoDB
# wire-protocol server (FerretDB, built by scripts/ferretdb.sh when missing).
# Last, the pages in headless Chromium (scripts/browser_test.py, over chromedriver).
#
# Outside CI, a missing chromium/chromedriver makes the browser tests skip loudly, and a
# FerretDB that cannot be built or started makes the MongoDB part skip
# loudly; under CI=true it is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ci="${CI:-false}"
fdb_dir="$(mktemp -d "${TMPDIR:-/tmp}/pastebin-ferretdb.XXXXXX")"
shots_dir="$(mktemp -d "${TMPDIR:-/tmp}/pastebin-screenshots.XXXXXX")"
cleanup() {
    scripts/ferretdb.sh stop "$fdb_dir" >/dev/null 2>&1 || true
    rm -rf "$fdb_dir" "$shots_dir"
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

echo "test.sh: cargo test --workspace (embedded store; MongoDB suites use FerretDB if up)"
cargo test --workspace --all-targets

if [ "$mongo_ready" = "true" ]; then
    echo "test.sh: end-to-end API tests again, nosqlsvc on MongoDB (FerretDB)"
    PASTEBIN_TEST_NOSQL=mongodb cargo test -p pastebin --test api
    echo "test.sh: the size matrix again, nosqlsvc on MongoDB (16 MiB documents)"
    PASTEBIN_TEST_NOSQL=mongodb cargo test -p pastebin --test hardening size_matrix
else
    echo "test.sh: ******** SKIPPED: API tests on MongoDB (no FerretDB) ********" >&2
fi

# The same binary the integration tests ran (cargo built it for them); screenshots go
# to a scratch directory here (`--screenshots docs` refreshes the README's).
echo "test.sh: the pages in headless Chromium (scripts/browser_test.py)"
cargo build -p pastebin --bin pastebin
python3 scripts/browser_test.py --bin target/debug/pastebin --screenshots "$shots_dir"
echo "test.sh: all tests passed"
