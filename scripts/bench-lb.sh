#!/usr/bin/env bash
# The balancer against nginx (one worker, round robin, upstream keep-alive) in front
# of the same two webservers, same client (wrk), same run, alternating. Loopback only.
#
#   scripts/bench-lb.sh [DURATION_S] [CONNECTIONS] [RUNS] [PATH...]
#
# PATH defaults to /healthz (answered by the webserver alone: the proxies' own cost)
# and a paste (/pastes/ID: the whole read path behind them).
# Needs: wrk, nginx, `cargo build --release --bin pastebin`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

dur=${1:-10}
conns=${2:-64}
runs=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
webs=2

work=$(mktemp -d "${TMPDIR:-/tmp}/pastebin-bench-lb.XXXXXX")
up_pid=""
cleanup() {
    [ -n "$up_pid" ] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null
    [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

start_stack "$webs"
mapfile -t webs < <(grep -v '^#' "$work/data/lb-backends.txt")

nginx_port=$(free_port)
{
    echo "worker_processes 1; pid $work/nginx.pid; error_log $work/nginx-error.log;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off;"
    echo "  upstream webs {"
    for w in "${webs[@]}"; do echo "    server $w;"; done
    echo "    keepalive 128; }"
    echo "  server { listen 127.0.0.1:$nginx_port;"
    echo "    location / { proxy_pass http://webs; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    echo "      proxy_set_header Host \$http_host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }"
} > "$work/nginx.conf"
nginx -t -q -c "$work/nginx.conf" -p "$work"
nginx -c "$work/nginx.conf" -p "$work"

id=$(make_paste)
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(/healthz "/pastes/$id")

echo "webservers=${webs[*]} duration=${dur}s connections=$conns runs=$runs cores=$(nproc)"
printf '%-4s %-8s %-20s %12s %10s\n' run proxy path 'req/s' p99
for r in $(seq 1 "$runs"); do
    for path in "${paths[@]}"; do
        for proxy in lb nginx; do
            case $proxy in
                lb) base=$url ;;
                nginx) base="http://127.0.0.1:$nginx_port" ;;
            esac
            out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency "$base$path")
            errs=$(echo "$out" | grep -E 'Non-2xx|Socket errors' || true)
            printf '%-4s %-8s %-20s %12s %10s %s\n' "$r" "$proxy" "$path" \
                "$(echo "$out" | awk '/^Requests\/sec/ {print $2}')" \
                "$(echo "$out" | awk '/^ +99%/ {print $2}')" "$errs"
        done
    done
done
