#!/usr/bin/env bash
# The whole test suite: every crate's tests (on the embedded store, plus the ones that
# need FerretDB, a real MongoDB wire-protocol server built by scripts/ferretdb.sh when
# missing), the end-to-end API tests and the size matrix again with nosqlsvc on
# FerretDB, Schemathesis against a whole stack (scripts/schemathesis.sh, installed when
# missing), and the pages in headless Chromium (scripts/browser_test.py).
#
# Everything is built once, in the release profile that `cargo run --release` (the
# README's first command) already built, so no dependency is compiled again; FerretDB
# (Go) is built while the tests compile.
#
# Every test binary, the two MongoDB reruns, Schemathesis and the browser tests run as
# separate jobs, TEST_JOBS (default 3) at a time, the longest first: most of their
# time is spent waiting on sockets and child processes, not on the CPU. Schemathesis
# and the browser tests need only the release binary, so they start before the tests
# compile. Each job's output is printed whole when it ends, with its wall time; a
# summary of the phases ends the run. TEST_JOBS=1 runs them one after the other. A job
# still running after TEST_JOB_TIMEOUT seconds (default 1200) is stopped and fails the
# run, so a hung test cannot hold CI.
#
# The test binaries are run directly (their paths from `cargo test --no-run`), in their
# package's directory with CARGO_MANIFEST_DIR set, as `cargo test` runs them. Running
# `cargo test -p pastebin` here instead would resolve features for one package only
# and recompile a dozen crates (2 min 22 s in CI).
#
# Outside CI, a missing chromium/chromedriver makes the browser tests skip loudly, and a
# FerretDB or a Schemathesis that cannot be installed makes that part skip loudly;
# under CI=true it is a failure.
#
# The tests that need FerretDB, and those that need root and iproute2 (emulated hosts,
# named emulated_hosts_*), are #[ignore]d with the reason, so a plain `cargo test`
# lists them as ignored, never as passed; this script runs them (`--include-ignored`,
# except the benchmarks named bench_*: figures, not checks) where they can run. Outside
# CI, a FerretDB that cannot be built or started, or no root, makes that part skip
# loudly (and counted); under CI=true it is a failure.
#
# Arguments go to every test binary, e.g. `scripts/test.sh --test-threads=1`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

ci="${CI:-false}"
jobs="${TEST_JOBS:-3}"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: TEST_JOBS must be a positive integer" >&2; exit 2; }
# Longest one job may run before it is stopped and counted as failed: a test that
# hangs (blocked outside its own timeouts) must fail the run, not hold CI until its
# global limit. Far above the longest job (under 2 minutes on a loaded 2-core machine).
job_timeout="${TEST_JOB_TIMEOUT:-1200}"
[[ $job_timeout =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: TEST_JOB_TIMEOUT must be a positive number of seconds" >&2; exit 2; }
target_dir="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d "${TMPDIR:-/tmp}/pastebin-test.XXXXXX")"
fdb_dir="$work/ferretdb"
mkdir -p "$fdb_dir" "$work/jobs" "$work/shots"
fdb_install_pid=""
running=() # pids of jobs still running, for the EXIT trap
descendants() { # pid: its children, theirs, ...
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}
cleanup() { # on any exit: the jobs still running (and what they started) end too
    local p victims=()
    for p in "${running[@]}" $fdb_install_pid; do
        victims+=("$p" $(descendants "$p"))
    done
    if [ "${#victims[@]}" -gt 0 ]; then
        kill -TERM "${victims[@]}" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    for d in "$fdb_dir" "$work/ferretdb-matrix" "$work/ferretdb-api"; do
        scripts/ferretdb.sh stop "$d" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

phases=()
phase() { # name, started at (SECONDS)
    phases+=("$(printf '%-58s %4d s' "$1" $((SECONDS - $2)))")
}

skipped=()
missing() { # what, why
    if [ "$ci" = "true" ]; then
        echo "test.sh: $1 unavailable ($2), and CI=true: failing" >&2
        exit 1
    fi
    echo "test.sh: ******** $1 unavailable ($2): its tests will be SKIPPED ********" >&2
    skipped+=("$1")
}

# The jobs: label, directory, command (quoted for eval; env assignments through `env`).
job_labels=()
job_dirs=()
job_cmds=()
add_job() { # label, dir, command...
    job_labels+=("$1")
    job_dirs+=("$2")
    shift 2
    local q
    printf -v q '%q ' "$@"
    job_cmds+=("$q")
}
failed=()
next_job=0
declare -A started_at=() pid_job=()
finish() { # pid of an ended job: print its output
    local p=$1 i rc
    i=${pid_job[$p]}
    rc=$(<"$work/jobs/$i.rc")
    echo "test.sh: ---- ${job_labels[$i]} ($((SECONDS - started_at[$p])) s, exit $rc) ----"
    cat "$work/jobs/$i.out"
    if [ "$rc" = 77 ] && [ "$ci" != "true" ]; then # the job's own loud skip (browser_test.py without a browser)
        skipped+=("${job_labels[$i]}")
    elif [ "$rc" = 77 ]; then # under CI=true a skip is a failure
        echo "test.sh: ${job_labels[$i]} skipped itself (exit 77), and CI=true: failing" >&2
        failed+=("${job_labels[$i]} (skipped under CI=true)")
    elif [ "$rc" != 0 ]; then
        failed+=("${job_labels[$i]}")
    fi
    phases+=("$(printf '  %-56s %4d s' "${job_labels[$i]}" $((SECONDS - started_at[$p])))")
}
reap() { # wait for one job to end
    local p keep=()
    wait -n "${running[@]}" 2>/dev/null || true
    for p in "${running[@]}"; do
        if [[ -e $work/jobs/${pid_job[$p]}.rc ]]; then
            finish "$p"
        else
            keep+=("$p")
        fi
    done
    running=("${keep[@]}")
}
launch_added() { # start the jobs added since the last call, at most $jobs running
    local i
    for ((i = next_job; i < ${#job_labels[@]}; i++)); do
        while ((${#running[@]} >= jobs)); do reap; done
        (
            cd "${job_dirs[$i]}"
            rc=0
            eval "timeout --kill-after=30 $job_timeout ${job_cmds[$i]}" >"$work/jobs/$i.out" 2>&1 </dev/null || rc=$?
            if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
                echo "test.sh: ******** stopped after $job_timeout s (TEST_JOB_TIMEOUT): it hung ********" >>"$work/jobs/$i.out"
            fi
            echo "$rc" >"$work/jobs/$i.rc"
        ) &
        started_at[$!]=$SECONDS
        pid_job[$!]=$i
        running+=("$!")
        echo "test.sh: started: ${job_labels[$i]}"
    done
    next_job=${#job_labels[@]}
}

start_time=$SECONDS

# The crates of the webserver link no storage engine (issue 9): their dependency trees,
# dev-dependencies included (cargo tree's default edges), name none. Cheap: it reads
# Cargo.lock and compiles nothing.
tree=$(cargo tree -p web -p read -p write) || { echo "test.sh: cargo tree failed" >&2; exit 1; }
engines=$(grep -E '(rusqlite|libsqlite3-sys|redb|mongodb) v' <<<"$tree" || true)
if [ -n "$engines" ]; then
    echo "test.sh: FAILED: web, read or write links a storage engine (cargo tree -p web -p read -p write):" >&2
    echo "$engines" >&2
    exit 1
fi

# Build FerretDB (Go, about 2 minutes the first time) while cargo compiles.
scripts/ferretdb.sh install >"$fdb_dir/install.out" 2>"$fdb_dir/install.err" &
fdb_install_pid=$!

# The release binary (up to date after the README's first command: nothing to do), for
# Schemathesis and the browser tests, which then run while the tests compile.
t=$SECONDS
echo "test.sh: cargo build --release --bin pastebin"
cargo build --release --bin pastebin
phase "cargo build --release --bin pastebin" "$t"
bin="$target_dir/release/pastebin"
[[ -x $bin ]] || { echo "test.sh: no $bin after the build" >&2; exit 1; }
if scripts/schemathesis.sh install >/dev/null; then
    add_job "Schemathesis against a whole stack" "$root" \
        scripts/schemathesis.sh run "$bin"
else
    missing Schemathesis "python3 -m venv or pip install failed"
fi
add_job "the pages in headless Chromium (scripts/browser_test.py)" "$root" \
    python3 scripts/browser_test.py --bin "$bin" --screenshots "$work/shots"
t_jobs=$SECONDS
launch_added

t=$SECONDS
echo "test.sh: cargo test --release --workspace --all-targets --no-run"
cargo test --release --workspace --all-targets --no-run --message-format=json-render-diagnostics \
    >"$work/artifacts.json"
phase "compile the tests (cargo test --no-run)" "$t"

# One line per test binary: package directory, label, executable.
python3 - "$work/artifacts.json" >"$work/binaries" <<'PY'
import json, os, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("profile", {}).get("test"):
        continue
    if not m.get("executable"):
        continue
    t = m["target"]
    pkg = os.path.dirname(m["manifest_path"])
    label = "%s %s %s" % (os.path.basename(pkg), t["kind"][0], t["name"])
    print("\t".join([pkg, label, m["executable"]]))
PY
[[ -s $work/binaries ]] || { echo "test.sh: cargo built no test binary" >&2; exit 1; }
# The release build above already compiled every dependency of the `pastebin` binary;
# if the tests' compile built one of the large ones again, a dev-dependency changed
# its features (or those of a crate under it) and the second command got slower for
# it (README, "Build time and size": getrandom 0.4 did that to the MongoDB driver).
python3 - "$work/artifacts.json" <<'PY' >&2
import json, sys
again = set()
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or m.get("fresh", True):
        continue
    # A dependency's library, not a test target of ours (nosqlsvc has one named mongodb).
    name = m["target"]["name"]
    if m["package_id"].startswith("registry+") and "lib" in m["target"]["kind"] and name in (
        "mongodb", "bson", "tokio", "hyper", "redb", "rusqlite", "rustls"
    ):
        again.add(name)
if again:
    print("test.sh: ******** the tests' compile built %s again: a dev-dependency changes "
          "features of the release build's dependencies (see README, \"Build time and "
          "size\") ********" % ", ".join(sorted(again)))
PY
test_bin() { # label -> executable
    awk -F'\t' -v l="$1" '$2 == l {print $3}' "$work/binaries"
}

t=$SECONDS
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
phase "wait for FerretDB's build after the compile, start it" "$t"

# Emulated hosts make network namespaces and cgroups: root and `ip` (iproute2).
emulate_ready=false
if [ "$(id -u)" = "0" ] && ip -V >/dev/null 2>&1; then
    emulate_ready=true
else
    missing "emulated hosts" "they need root and iproute2's ip"
fi

# Which ignored tests this machine can run: those needing FerretDB, those needing root
# (named emulated_hosts_*), or both.
ignored=()
extra_emulated=false
if [ "$mongo_ready" = "true" ] && [ "$emulate_ready" = "true" ]; then
    ignored=(--include-ignored --skip bench_)
elif [ "$mongo_ready" = "true" ]; then
    ignored=(--include-ignored --skip bench_ --skip emulated_hosts_)
elif [ "$emulate_ready" = "true" ]; then
    extra_emulated=true
fi

# The longest first, so that the pool ends together. The two MongoDB reruns each get a
# FerretDB of their own: FerretDB's SQLite backend writes one document at a time, and
# the size matrix's 16 MiB documents would otherwise stall every other MongoDB test
# running beside it (a 30 s health check seen in CI).
own_ferretdb() { # dir -> a URI: a FerretDB of its own, or the shared one if it fails
    local uri
    if uri=$(scripts/ferretdb.sh start "$1" 2>/dev/null | tail -n 1) && [[ $uri == mongodb://* ]]; then
        echo "$uri"
    else
        echo "test.sh: a FerretDB of its own did not start under $1; sharing the first" >&2
        echo "$PASTEBIN_TEST_MONGODB_URI"
    fi
}
if [ "$mongo_ready" = "true" ]; then
    add_job "stacktests hardening size_matrix, nosqlsvc on MongoDB" "$root/stacktests" \
        env PASTEBIN_TEST_NOSQL=mongodb CARGO_MANIFEST_DIR="$root/stacktests" \
        PASTEBIN_TEST_MONGODB_URI="$(own_ferretdb "$work/ferretdb-matrix")" \
        "$(test_bin "stacktests test hardening")" size_matrix "$@"
    add_job "stacktests api, nosqlsvc on MongoDB" "$root/stacktests" \
        env PASTEBIN_TEST_NOSQL=mongodb CARGO_MANIFEST_DIR="$root/stacktests" \
        PASTEBIN_TEST_MONGODB_URI="$(own_ferretdb "$work/ferretdb-api")" \
        "$(test_bin "stacktests test api")" "$@"
fi
while IFS=$'\t' read -r dir label exe; do
    add_job "$label" "$dir" env CARGO_MANIFEST_DIR="$dir" "$exe" "${ignored[@]}" "$@"
    if [ "$extra_emulated" = "true" ] && "$exe" --list --ignored emulated_hosts_ 2>/dev/null | grep -q ': test$'; then
        add_job "$label (emulated hosts)" "$dir" env CARGO_MANIFEST_DIR="$dir" "$exe" --ignored emulated_hosts_ "$@"
    fi
done <"$work/binaries"
echo "test.sh: ${#job_labels[@]} jobs in all, $jobs at a time"
launch_added
while ((${#running[@]} > 0)); do reap; done
phase "the ${#job_labels[@]} jobs, $jobs at a time (from the first start)" "$t_jobs"

count_ignored() { # test-binary filter arguments -> how many ignored tests they select
    while IFS=$'\t' read -r dir label exe; do
        (cd "$dir" && "$exe" --list --ignored "$@" 2>/dev/null) || true
    done <"$work/binaries" | grep -c ': test$' || true
}
if [ "$mongo_ready" != "true" ] && [ "$emulate_ready" != "true" ]; then
    echo "test.sh: ******** SKIPPED: $(count_ignored --skip bench_) tests that need FerretDB or root, and the API tests on MongoDB ********" >&2
elif [ "$mongo_ready" != "true" ]; then
    echo "test.sh: ******** SKIPPED: $(count_ignored --skip bench_ --skip emulated_hosts_) tests that need FerretDB, and the API tests on MongoDB ********" >&2
elif [ "$emulate_ready" != "true" ]; then
    echo "test.sh: ******** SKIPPED: $(count_ignored emulated_hosts_) tests that need root (emulated hosts) ********" >&2
fi

phase "test.sh in all" "$start_time"
echo "test.sh: where the time went (jobs overlap):"
printf '  %s\n' "${phases[@]}"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
elif [ "${#skipped[@]}" -gt 0 ]; then
    echo "test.sh: passed, but ******** SKIPPED: ${skipped[*]} ********" >&2
else
    echo "test.sh: all tests passed"
fi
