#!/usr/bin/env bash
# The balancer against nginx (NGINX_WORKERS workers, default 2: one per core, like
# lb's workers; round robin, upstream keep-alive, the same X-Forwarded-For/-Proto/-Host
# headers lb adds) in front of the same two webservers, same client (wrk), same run,
# alternating. Loopback only. Prints each run (req/s, p99, and the CPU time the proxy
# spent per answered request, all its threads and processes, from /proc: a figure that
# other work on a shared machine disturbs far less than req/s), then the medians.
#
#   scripts/bench-lb.sh [DURATION_S] [CONNECTIONS] [RUNS] [PATH...]
#
# PATH defaults to /healthz (answered by the webserver alone: the proxies' own cost)
# and a paste (/pastes/ID: the whole read path behind them).
# Needs: wrk, nginx, python3, `cargo build --release --bin pastebin`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

dur=${1:-10}
conns=${2:-64}
runs=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
webs=2
nginx_workers=${NGINX_WORKERS:-2}

work=$(mktemp -d "${TMPDIR:-/tmp}/pastebin-bench-lb.XXXXXX")
up_pid=""
nginx_pid=""
cleanup() {
    [ -n "$up_pid" ] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

start_stack "$webs"
mapfile -t webs < <(grep -v '^#' "$work/data/lb-backends.txt")

nginx_port=$(free_port)
{
    # In the foreground, in this script's session: a daemon would start a session of
    # its own, and with the kernel's autogroup scheduling (on by default) get a CPU
    # share of its own next to the one the balancer, wrk and the webservers share.
    echo "daemon off; worker_processes $nginx_workers; pid $work/nginx.pid; error_log $work/nginx-error.log;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off;"
    echo "  upstream webs {"
    for w in "${webs[@]}"; do echo "    server $w;"; done
    echo "    keepalive 128; }"
    echo "  server { listen 127.0.0.1:$nginx_port;"
    echo "    location / { proxy_pass http://webs; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    echo "      proxy_set_header Host \$http_host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
    echo "      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$http_host; } } }"
} > "$work/nginx.conf"
nginx -t -q -c "$work/nginx.conf" -p "$work"
nginx -c "$work/nginx.conf" -p "$work" 2> "$work/nginx.err" &
nginx_pid=$!
for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && break
    sleep 0.1
done

# The processes whose CPU time each proxy is charged: the one listening on its port
# (lb; nginx's master) and its children (nginx's workers).
pids_on_port() {
    local p
    p=$(ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | head -1)
    echo "$p $(pgrep -P "$p" | tr '\n' ' ')"
}
lb_port=${url##*:}
lb_pids=$(pids_on_port "$lb_port")
nginx_pids=$(pids_on_port "$nginx_port")

id=$(make_paste)
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(/healthz "/pastes/$id")

echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "webservers=${webs[*]} duration=${dur}s connections=$conns runs=$runs cores=$(nproc) nginx_workers=$nginx_workers"
printf '%-4s %-8s %-20s %12s %10s %12s\n' run proxy path 'req/s' p99 'cpu/req(us)'
: > "$work/results"
for r in $(seq 1 "$runs"); do
    for path in "${paths[@]}"; do
        for proxy in lb nginx; do
            case $proxy in
                lb) base=$url pids=$lb_pids ;;
                nginx) base="http://127.0.0.1:$nginx_port" pids=$nginx_pids ;;
            esac
            # shellcheck disable=SC2086  # a list of pids
            before=$(cpu_ticks $pids)
            out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency "$base$path")
            # shellcheck disable=SC2086
            after=$(cpu_ticks $pids)
            errs=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr -s ' ' | tr '\n' ' ' || true)
            rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
            p99=$(echo "$out" | awk '/^ +99%/ {print $2}')
            n=$(echo "$out" | awk '/requests in/ {print $1}')
            cpu=$(python3 -c "import os; print(round(($after - $before) * 1e6 / os.sysconf('SC_CLK_TCK') / max($n, 1), 2))")
            echo "$proxy $path $rps $p99 $cpu" >> "$work/results"
            printf '%-4s %-8s %-20s %12s %10s %12s %s\n' "$r" "$proxy" "$path" "$rps" "$p99" "$cpu" "$errs"
        done
    done
done
echo "# medians, and lb / nginx in req/s"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    proxy, path, rps, p99, cpu = line.split()
    p99_ms = float(p99[:-2]) if p99.endswith("ms") else float(p99[:-2]) / 1000 if p99.endswith("us") else float(p99[:-1]) * 1000
    rows.setdefault((path, proxy), []).append((float(rps), p99_ms, float(cpu)))
for path in dict.fromkeys(p for p, _ in rows):
    med = {proxy: [statistics.median(c) for c in zip(*rows[(path, proxy)])] for proxy in ("lb", "nginx")}
    for proxy in ("lb", "nginx"):
        rps, p99, cpu = med[proxy]
        print(f"{path:20} {proxy:6} median {rps:10.0f} req/s  p99 {p99:7.2f} ms  cpu/req {cpu:6.2f} us")
    print(f"{path:20} lb/nginx {med['lb'][0] / med['nginx'][0]:.3f}")
PY
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
