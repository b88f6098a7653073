#!/usr/bin/env bash
# FerretDB (a MongoDB wire-protocol server over SQLite) for the nosqlsvc MongoDB tests:
# builds it from the Go module proxy when missing, starts it on a free loopback port,
# stops it.
#
#   scripts/ferretdb.sh install      build FerretDB once; prints the binary's path
#   scripts/ferretdb.sh start DIR    start it with fresh data under DIR; the last line
#                                    on stdout is its URI, mongodb://127.0.0.1:PORT/
#   scripts/ferretdb.sh stop DIR     stop the one started under DIR
#
# Typical use:
#   export PASTEBIN_FERRETDB_BIN=$(scripts/ferretdb.sh install | tail -1)
#   export PASTEBIN_TEST_MONGODB_URI=$(scripts/ferretdb.sh start /tmp/ferret | tail -1)
#   cargo test -p nosqlsvc
#   scripts/ferretdb.sh stop /tmp/ferret
#
# Environment: FERRETDB_HOME (default ~/.cache/pastebin-ferretdb) holds bin/ferretdb;
# FERRETDB_START_TIMEOUT (default 30) bounds the wait for the port, in seconds.
set -euo pipefail

readonly FERRETDB_VERSION=v1.24.2
readonly FERRETDB_MODULE=github.com/FerretDB/FerretDB
readonly FERRETDB_HOME=${FERRETDB_HOME:-$HOME/.cache/pastebin-ferretdb}
readonly FERRETDB_BIN=$FERRETDB_HOME/bin/ferretdb
readonly START_TIMEOUT=${FERRETDB_START_TIMEOUT:-30}
readonly STOP_TIMEOUT=10

die() {
    echo "ferretdb.sh: $*" >&2
    exit 1
}

note() {
    echo "ferretdb.sh: $*" >&2
}

usage() {
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
}

# Whether $1 is a FerretDB binary that runs.
works() {
    [[ -x $1 ]] && "$1" --version >/dev/null 2>&1
}

# Builds FerretDB into $FERRETDB_BIN unless a working one is already there.
# `go install ...@v1.24.2` is not enough: the module lacks build/version/version.txt
# and the binary panics at startup, so build from a writable copy of the module.
cmd_install() {
    if works "$FERRETDB_BIN"; then
        echo "$FERRETDB_BIN"
        return
    fi
    command -v go >/dev/null 2>&1 ||
        die "the Go toolchain (go) is needed to build FerretDB and is not on PATH"

    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/ferretdb-build.XXXXXX")
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "chmod -R u+w '$work' 2>/dev/null; rm -rf '$work'" EXIT

    note "building FerretDB $FERRETDB_VERSION (a few minutes the first time)"
    local info dir
    # Outside any module, in an empty directory, so a go.mod around us cannot interfere.
    info=$(cd "$work" && go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION") ||
        die "go mod download $FERRETDB_MODULE@$FERRETDB_VERSION failed: $info"
    dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
    [[ -n $dir && -f $dir/go.mod ]] || die "no module directory in: $info"

    cp -R "$dir" "$work/src"
    chmod -R u+w "$work/src"
    echo "$FERRETDB_VERSION" >"$work/src/build/version/version.txt"
    mkdir -p "$(dirname "$FERRETDB_BIN")"
    # -buildvcs=false: the copy may sit inside some other repository's work tree.
    # Only the SQLite handler is used (see start): ferretdb_no_postgresql leaves out the
    # PostgreSQL driver (7 % less CPU for a fresh build: 113 s instead of 121 s), and
    # -s -w the debug info (a smaller binary, a shorter link).
    (cd "$work/src" && GOFLAGS=-mod=mod go build -buildvcs=false -trimpath \
        -tags ferretdb_no_postgresql -ldflags='-s -w' \
        -o "$work/ferretdb" ./cmd/ferretdb) >&2 || die "go build failed"
    works "$work/ferretdb" || die "the built binary does not run: $("$work/ferretdb" --version 2>&1 | head -3)"
    # Atomic: a concurrent start never sees half a binary.
    mv -f "$work/ferretdb" "$FERRETDB_BIN.tmp.$$"
    mv -f "$FERRETDB_BIN.tmp.$$" "$FERRETDB_BIN"
    echo "$FERRETDB_BIN"
}

# The absolute path of directory $1, created if needed.
abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd -P)
}

# The pid in $1/ferretdb.pid if that process is alive and is FerretDB.
running_pid() {
    local pidfile=$1/ferretdb.pid pid cmdline
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Not some other process that got the recycled pid.
    if [[ -r /proc/$pid/cmdline ]]; then
        cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
        [[ $cmdline == *ferretdb* ]] || return 1
    fi
    echo "$pid"
}

cmd_start() {
    local dir pid log port="" waited=0
    dir=$(abs_dir "$1")
    if pid=$(running_pid "$dir"); then
        die "FerretDB already runs under $dir (pid $pid); stop it first"
    fi
    cmd_install >/dev/null

    rm -rf "$dir/data" "$dir/state"
    mkdir -p "$dir/data" "$dir/state"
    log=$dir/ferretdb.log
    : >"$log"

    # Port 0: the kernel picks a free port, FerretDB logs it ("Listening on TCP
    # 127.0.0.1:PORT..."); no window in which someone else can take it.
    # Own session, no inherited stdout: callers' $(... | tail -1) must not wait on it.
    setsid "$FERRETDB_BIN" \
        --handler=sqlite \
        --sqlite-url="file:$dir/data/" \
        --listen-addr=127.0.0.1:0 \
        --state-dir="$dir/state" \
        --debug-addr=- \
        --telemetry=disable \
        --log-level=info \
        </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/ferretdb.pid"

    while [[ -z $port ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$dir/ferretdb.pid"
            tail -n 20 "$log" >&2 || true
            die "FerretDB exited at startup; log: $log"
        fi
        port=$(sed -n 's/.*Listening on TCP 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p;T;q' "$log")
        if [[ -z $port ]]; then
            if ((waited >= START_TIMEOUT * 10)); then
                kill -KILL "$pid" 2>/dev/null || true
                rm -f "$dir/ferretdb.pid"
                tail -n 20 "$log" >&2 || true
                die "FerretDB did not listen within ${START_TIMEOUT}s; log: $log"
            fi
            sleep 0.1
            waited=$((waited + 1))
        fi
    done
    # The log line comes right before accept(); check that a connection gets through.
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ((waited >= START_TIMEOUT * 10)) || ! kill -0 "$pid" 2>/dev/null; then
            cmd_stop "$dir" >/dev/null 2>&1 || true
            die "FerretDB does not accept connections on port $port; log: $log"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    local uri="mongodb://127.0.0.1:$port/"
    echo "$uri" >"$dir/uri"
    note "FerretDB $FERRETDB_VERSION pid $pid on 127.0.0.1:$port, log $log"
    echo "$uri"
}

cmd_stop() {
    local dir pid waited=0
    [[ -d $1 ]] || die "no such directory: $1"
    dir=$(abs_dir "$1")
    if ! pid=$(running_pid "$dir"); then
        rm -f "$dir/ferretdb.pid" "$dir/uri"
        note "FerretDB is not running under $dir"
        return
    fi
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT * 10)); then
            note "FerretDB (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$dir/ferretdb.pid" "$dir/uri"
    note "FerretDB (pid $pid) stopped"
}

main() {
    [[ $# -ge 1 ]] || usage
    case $1 in
    install)
        [[ $# -eq 1 ]] || usage
        cmd_install
        ;;
    start)
        [[ $# -eq 2 ]] || usage
        cmd_start "$2"
        ;;
    stop)
        [[ $# -eq 2 ]] || usage
        cmd_stop "$2"
        ;;
    *) usage ;;
    esac
}

main "$@"
