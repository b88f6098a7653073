#!/usr/bin/env bash
# Throughput of the stack through the balancer, measured with wrk, against nginx
# answering a fixed 200 in the same run (the reference). Loopback only; every run is
# bounded by its duration.
#
#   scripts/bench-wrk.sh [WEBSERVERS] [DURATION_S] [CONNECTIONS] [RUNS]
#
# Needs: wrk and nginx (Debian packages), `cargo build --release --bin pastebin`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

webs=${1:-2}
dur=${2:-10}
conns=${3:-64}
runs=${4:-3}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx missing: apt-get install nginx" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pastebin-bench.XXXXXX")
up_pid=""
cleanup() {
    [ -n "$up_pid" ] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null
    [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The reference: nginx, one worker, a fixed 200 on a free port.
nginx_port=$(free_port)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$nginx_port;
        location / { return 200 "hello\n"; }
    }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"

start_stack "$webs"
id=$(make_paste)

rps() { awk '/^Requests\/sec/ {print $2}'; }
p99() { awk '/^ +99%/ {print $2}'; }
echo "webservers=$webs duration=${dur}s connections=$conns runs=$runs cores=$(nproc)"
printf '%-6s %-12s %12s %10s\n' run target 'req/s' p99
for r in $(seq 1 "$runs"); do
    for target in nginx get post; do
        case $target in
            nginx) out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency "http://127.0.0.1:$nginx_port/") ;;
            get) out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency "$url/pastes/$id") ;;
            post) out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency -s bench/post.lua "$url") ;;
        esac
        errs=$(echo "$out" | grep -E 'Non-2xx|Socket errors' || true)
        printf '%-6s %-12s %12s %10s %s\n' "$r" "$target" "$(echo "$out" | rps)" "$(echo "$out" | p99)" "$errs"
    done
done
