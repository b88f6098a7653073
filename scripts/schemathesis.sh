#!/usr/bin/env bash
# Schemathesis (property-based API testing, from PyPI) against a whole stack on free
# ports: every operation of the OpenAPI description the balancer serves at
# /openapi.json, with generated inputs (valid and invalid), checked for server
# errors, statuses the description does not list, and answers (bodies, content
# types, headers) that do not match it.
#
#   scripts/schemathesis.sh install   create the pinned venv once; prints schemathesis' path
#   scripts/schemathesis.sh run BIN   start `BIN up` on free ports, run Schemathesis, stop it
#
# Environment: SCHEMATHESIS_HOME (default ~/.cache/pastebin-schemathesis) holds the
# venv (about 95 MB); SCHEMATHESIS_MAX_EXAMPLES (default 25) bounds the generated
# cases per operation and phase, so each phase runs once. SCHEMATHESIS_MAX_TIME (unset
# by default) is Schemathesis' --max-time: a budget that fuzzing and stateful testing
# repeat until it is SPENT, so a longer search, not a bound (240 s made every CI run
# take 240 s). The bound is SCHEMATHESIS_TIMEOUT (default 900 s), after which the run
# is killed and fails.
set -euo pipefail

readonly SCHEMATHESIS_VERSION=4.32.5
readonly VENV=${SCHEMATHESIS_HOME:-$HOME/.cache/pastebin-schemathesis}
readonly ST=$VENV/bin/schemathesis
readonly MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
readonly MAX_TIME=${SCHEMATHESIS_MAX_TIME:-}
readonly TIMEOUT=${SCHEMATHESIS_TIMEOUT:-900}
readonly START_TIMEOUT=60
pid="" # the stack's launcher; global, for the EXIT trap

die() {
    echo "schemathesis.sh: $*" >&2
    exit 1
}

installed() {
    [[ -x $ST ]] && [[ $("$ST" --version 2>/dev/null) == *"$SCHEMATHESIS_VERSION"* ]]
}

cmd_install() {
    if ! installed; then
        command -v python3 >/dev/null 2>&1 || die "python3 is needed for Schemathesis"
        echo "schemathesis.sh: installing schemathesis==$SCHEMATHESIS_VERSION into $VENV" >&2
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION" >&2 || die "pip install failed"
        installed || die "the installed schemathesis does not run"
    fi
    echo "$ST"
}

cmd_run() {
    local bin=$1
    [[ -x $bin ]] || die "no pastebin binary at $bin"
    installed || die "schemathesis is not installed: run $0 install"
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/pastebin-schemathesis.XXXXXX")
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "stop_stack; rm -rf '$work'" EXIT
    stop_stack() {
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    }

    # Every port 0: nothing fixed, nothing shared with another run.
    NO_COLOR=1 RUST_LOG=warn "$bin" up --data-dir "$work/data" --lb-listen 127.0.0.1:0 \
        --web-base-port 0 --sqlsvc 127.0.0.1:0 --nosqlsvc 127.0.0.1:0 \
        >"$work/stdout" 2>"$work/stderr" &
    pid=$!
    local url="" deadline=$((SECONDS + START_TIMEOUT))
    while [[ -z $url ]]; do
        url=$(grep -m1 '^http://' "$work/stdout" || true)
        if [[ -z $url ]]; then
            if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
                cat "$work/stderr" >&2
                die "the stack did not come up within ${START_TIMEOUT} s"
            fi
            sleep 0.2
        fi
    done
    local seed=${SCHEMATHESIS_SEED:-$RANDOM}
    echo "schemathesis.sh: stack at $url; schemathesis $SCHEMATHESIS_VERSION, at most $MAX_EXAMPLES cases per operation, seed $seed (SCHEMATHESIS_SEED=$seed repeats this run)" >&2

    local status=0
    # One worker: with two, Python 3.11's ast module fails under Hypothesis' threads
    # ("AST constructor recursion depth mismatch"), a runtime error, not a finding.
    # From the scratch directory: Schemathesis writes a .schemathesis/ cache where it runs.
    local budget=()
    if [[ -n $MAX_TIME ]]; then budget=(--max-time "$MAX_TIME"); fi
    (cd "$work" && timeout "$TIMEOUT" "$ST" --no-color run "$url/openapi.json" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,unsupported_method,allow_header_conformance \
        --max-examples "$MAX_EXAMPLES" \
        "${budget[@]}" \
        --request-timeout 20 \
        --workers 1 \
        --seed "$seed" \
        --warnings off) || status=$?
    if ((status == 124)); then
        echo "schemathesis.sh: FAILED: not finished within SCHEMATHESIS_TIMEOUT=$TIMEOUT s" >&2
    fi
    if ((status != 0)); then
        echo "schemathesis.sh: FAILED; the stack's log (warnings and errors):" >&2
        tail -n 50 "$work/stderr" >&2
    fi
    return "$status"
}

case ${1:-} in
install) cmd_install ;;
run)
    [[ $# -eq 2 ]] || die "usage: $0 run PASTEBIN_BIN"
    cmd_run "$2"
    ;;
*)
    echo "usage: $0 install | run PASTEBIN_BIN" >&2
    exit 2
    ;;
esac
