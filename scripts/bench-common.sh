# shellcheck shell=bash disable=SC2154,SC2034  # work is set, and up_pid used, by the caller
# Shared by the benchmark scripts (sourced, not run): a free loopback port, a stack
# started by `pastebin up` with every port 0 under a work directory, a ~1 KB paste.
# The caller sets `work` (a temporary directory) and stops `up_pid` on exit.

# Prints a free loopback port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_stack WEBSERVERS: starts target/release/pastebin up; sets url and up_pid.
start_stack() {
    local webs=$1 bin=target/release/pastebin
    [ -x "$bin" ] || { echo "build first: cargo build --release --bin pastebin" >&2; exit 1; }
    cat > "$work/pastebin.toml" <<CONF
data_dir = "$work/data"
[lb]
listen = "127.0.0.1:0"
[web]
count = $webs
base_port = 0
[sqlsvc]
listen = "127.0.0.1:0"
[nosqlsvc]
listen = "127.0.0.1:0"
CONF
    RUST_LOG=warn "$bin" --config "$work/pastebin.toml" up > "$work/up.out" 2> "$work/up.err" &
    up_pid=$!
    url=""
    for _ in $(seq 1 300); do
        url=$(grep -m1 '^http://' "$work/up.out" || true)
        [ -n "$url" ] && return 0
        sleep 0.1
    done
    echo "pastebin up did not start" >&2
    cat "$work/up.err" >&2
    exit 1
}

# Prints the id of a new ~1 KB paste (the Primer's average size) at $url.
make_paste() {
    curl -s -X POST "$url/pastes/" -H 'Content-Type: application/json' \
        --data "{\"text\": \"$(head -c 1000 /dev/zero | tr '\0' x)\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["paste_id"])'
}

# cpu_ticks PID...: CPU time (user + system, clock ticks) of the processes, all threads.
cpu_ticks() {
    local t=0 p s
    for p in "$@"; do
        for s in /proc/"$p"/task/*/stat; do
            [ -e "$s" ] && t=$((t + $(awk '{print $14 + $15}' "$s")))
        done
    done
    echo "$t"
}
