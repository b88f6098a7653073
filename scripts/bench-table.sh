#!/usr/bin/env bash
# Every hop against its reference, side by side in one run, alternating, medians:
#
#   proxy     lb vs nginx (1 and 2 workers) in front of the same two bare hyper
#             servers (lb_bench backend), GET /healthz, same X-Forwarded-* headers
#   read      GET /pastes/{id} and /pastes/{id}/raw through lb + 2 webservers vs
#             wastebin's GET /raw/{id} (needs WASTEBIN)
#   create    POST /pastes/ (1,000 bytes, durable before the 201) vs wastebin's POST /
#             (needs WASTEBIN); with FERRETDB_URI also the MongoDB backend on FerretDB
#   loadtest  loadtest --get vs wrk on a bare hyper server (lb_bench backend), with
#             each generator's CPU time per request
#   memory    every process's RSS idle, then after CREATES creates
#
#   scripts/bench-table.sh [SECTION...]          (default: all of them)
#
# Environment: LB_BEFORE (an older lb_bench binary, measured alongside as lb-before),
# LT_BEFORE (an older loadtest binary, measured alongside as loadtest-before),
# DUR (seconds per run, 10), CONNS (64), RUNS (3), LT_CONNS (32, the
# loadtest section), CREATES (100000), WASTEBIN (a wastebin 3.7.0 binary, built
# outside this repository), FERRETDB_URI (mongodb://... of a running FerretDB,
# see scripts/ferretdb.sh).
# Needs: wrk, nginx, python3, and
#   cargo build --release --bin pastebin --bin loadtest -p lb --example lb_bench
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

dur=${DUR:-10}
conns=${CONNS:-64}
runs=${RUNS:-3}
lt_conns=${LT_CONNS:-32}
creates=${CREATES:-100000}
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(proxy read create loadtest memory)
lb_bench=target/release/examples/lb_bench
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx missing: apt-get install nginx-light" >&2; exit 1; }
[ -x "$lb_bench" ] || { echo "build first: cargo build --release -p lb --example lb_bench" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pastebin-bench-table.XXXXXX")
up_pid=""
pids=()
cleanup() {
    [ -n "$up_pid" ] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "# $(date -u +%FT%TZ) cores=$(nproc) load: $(cut -d' ' -f1-3 /proc/loadavg) duration=${dur}s connections=$conns runs=$runs"
echo "# results: $work/results (section what run req/s p99)"
: > "$work/results"

# wrk_run SECTION WHAT RUN WRK-ARGS...: one wrk run, recorded. With CPU_PIDS set,
# also the CPU time those processes spent per answered request (microseconds): a
# figure that the other builds on a shared machine disturb less than req/s.
wrk_run() {
    local section=$1 what=$2 r=$3
    shift 3
    local out before after n cpu="-"
    # shellcheck disable=SC2086  # CPU_PIDS is a list
    before=$(cpu_ticks ${CPU_PIDS:-})
    out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency "$@")
    # shellcheck disable=SC2086
    after=$(cpu_ticks ${CPU_PIDS:-})
    local rps p99 errs
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '/^ +99%/ {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    if [ -n "${CPU_PIDS:-}" ] && [ "${n:-0}" -gt 0 ]; then
        cpu=$(python3 -c "import os,sys; print(round(($after-$before)*1e6/os.sysconf('SC_CLK_TCK')/$n, 2))")
    fi
    errs=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr -s ' ' | tr '\n' ' ' || true)
    echo "$section $what $r $rps $p99 $cpu" >> "$work/results"
    printf '  %-9s %-28s run %s %10s req/s  p99 %-8s cpu/req %6s us %s\n' "$section" "$what" "$r" "$rps" "$p99" "$cpu" "$errs"
}

# start_bg VAR CMD...: starts CMD in the background (same session: same scheduler
# group as the others), records its pid in VAR and for cleanup.
start_bg() {
    local var=$1
    shift
    "$@" &
    local pid=$!
    pids+=("$pid")
    printf -v "$var" '%s' "$pid"
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

wait_port() {
    for _ in $(seq 1 100); do
        (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# nginx_proxy WORKERS PORT BACKEND...: nginx in the foreground (daemon off) as a
# round-robin proxy with upstream keep-alive and lb's X-Forwarded-* headers.
nginx_proxy() {
    local workers=$1 port=$2
    shift 2
    local conf="$work/nginx-$workers.conf"
    {
        echo "daemon off; worker_processes $workers; pid $work/nginx-$workers.pid;"
        echo "error_log $work/nginx-$workers-error.log;"
        echo "events { worker_connections 4096; }"
        echo "http { access_log off;"
        echo "  upstream webs {"
        for b in "$@"; do echo "    server $b;"; done
        echo "    keepalive 128; }"
        echo "  server { listen 127.0.0.1:$port;"
        echo "    location / { proxy_pass http://webs; proxy_http_version 1.1;"
        echo "      proxy_set_header Connection \"\"; proxy_set_header Host \$http_host;"
        echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
        echo "      proxy_set_header X-Forwarded-Proto \$scheme;"
        echo "      proxy_set_header X-Forwarded-Host \$http_host; } } }"
    } > "$conf"
    nginx -t -q -c "$conf" -p "$work"
    exec nginx -c "$conf" -p "$work" 2> "$work/nginx-$workers.err"
}

section_proxy() {
    echo "## proxy only: GET /healthz through each proxy to 2 bare hyper servers"
    local b1 b2 lbp n1 n2 pid_b1 pid_b2 pid_lb pid_n1 pid_n2
    b1=$(free_port) b2=$(free_port) lbp=$(free_port) n1=$(free_port) n2=$(free_port)
    start_bg pid_b1 "$lb_bench" backend "$b1"
    start_bg pid_b2 "$lb_bench" backend "$b2"
    wait_port "$b1"
    wait_port "$b2"
    start_bg pid_lb "$lb_bench" lb "$lbp" "127.0.0.1:$b1" "127.0.0.1:$b2"
    start_bg pid_n1 nginx_proxy 1 "$n1" "127.0.0.1:$b1" "127.0.0.1:$b2"
    start_bg pid_n2 nginx_proxy 2 "$n2" "127.0.0.1:$b1" "127.0.0.1:$b2"
    wait_port "$lbp"
    wait_port "$n1"
    wait_port "$n2"
    local lbo="" pid_lbo=""
    if [ -n "${LB_BEFORE:-}" ]; then
        lbo=$(free_port)
        start_bg pid_lbo "$LB_BEFORE" lb "$lbo" "127.0.0.1:$b1" "127.0.0.1:$b2"
        wait_port "$lbo"
    fi
    for r in $(seq 1 "$runs"); do
        if [ -n "$lbo" ]; then
            CPU_PIDS="$pid_lbo" wrk_run proxy lb-before "$r" "http://127.0.0.1:$lbo/healthz"
        fi
        CPU_PIDS="$pid_lb" wrk_run proxy lb "$r" "http://127.0.0.1:$lbp/healthz"
        CPU_PIDS="$pid_n1 $(pgrep -P "$pid_n1" | tr '\n' ' ')" \
            wrk_run proxy nginx-1-worker "$r" "http://127.0.0.1:$n1/healthz"
        CPU_PIDS="$pid_n2 $(pgrep -P "$pid_n2" | tr '\n' ' ')" \
            wrk_run proxy nginx-2-workers "$r" "http://127.0.0.1:$n2/healthz"
    done
    for p in "$pid_lb" $pid_lbo "$pid_n1" "$pid_n2" "$pid_b1" "$pid_b2"; do stop_pid "$p"; done
}

# wastebin_start PORT DB: wastebin afresh on the same database file (3.7.0 exits when
# a client hangs up while it waits on its database, as wrk does at the end of a run).
wastebin_start() {
    WASTEBIN_ADDRESS_PORT="127.0.0.1:$1" WASTEBIN_DATABASE_PATH="$2" RUST_LOG=error \
        "$WASTEBIN" > "$work/wastebin.out" 2>&1 &
    wb_pid=$!
    pids+=("$wb_pid")
    wait_port "$1"
}

wastebin_paste() {
    curl -s -X POST "http://127.0.0.1:$1/" -H 'Content-Type: application/json' \
        --data "{\"text\": \"$(head -c 1000 /dev/zero | tr '\0' x)\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["path"].strip("/"))'
}

section_read() {
    echo "## read path: a 1,000-byte paste through lb + 2 webservers vs wastebin's raw GET"
    start_stack 2
    local id wb_port wb_id
    id=$(make_paste)
    if [ -n "${WASTEBIN:-}" ]; then
        wb_port=$(free_port)
        wastebin_start "$wb_port" "$work/wastebin-read.db"
        wb_id=$(wastebin_paste "$wb_port")
        stop_pid "$wb_pid"
    fi
    for r in $(seq 1 "$runs"); do
        wrk_run read "pastebin-/pastes/id" "$r" "$url/pastes/$id"
        wrk_run read "pastebin-/pastes/id/raw" "$r" "$url/pastes/$id/raw"
        if [ -n "${WASTEBIN:-}" ]; then
            wastebin_start "$wb_port" "$work/wastebin-read.db"
            wrk_run read "wastebin-/raw/id" "$r" "http://127.0.0.1:$wb_port/raw/$wb_id"
            stop_pid "$wb_pid"
        fi
    done
    kill -TERM "$up_pid" && wait "$up_pid" 2>/dev/null || true
    up_pid=""
}

section_create() {
    echo "## durable create, 1,000 bytes"
    start_stack 2
    local wb_port mongo_url=""
    [ -n "${WASTEBIN:-}" ] && wb_port=$(free_port)
    local embedded_url=$url embedded_pid=$up_pid
    if [ -n "${FERRETDB_URI:-}" ]; then
        mkdir -p "$work/mongo"
        local saved_work=$work
        work=$work/mongo
        PASTEBIN_NOSQL_BACKEND=mongodb PASTEBIN_MONGODB_URI=$FERRETDB_URI \
            PASTEBIN_MONGODB_COLLECTION="bench_$$" start_stack 2
        mongo_url=$url
        mongo_pid=$up_pid
        pids+=("$mongo_pid")
        work=$saved_work
        up_pid=$embedded_pid
    fi
    for r in $(seq 1 "$runs"); do
        wrk_run create pastebin-embedded "$r" -s bench/post.lua "$embedded_url"
        if [ -n "$mongo_url" ]; then
            wrk_run create pastebin-mongodb-ferretdb "$r" -s bench/post.lua "$mongo_url"
        fi
        if [ -n "${WASTEBIN:-}" ]; then
            wastebin_start "$wb_port" "$work/wastebin-create.db"
            wrk_run create wastebin "$r" -s bench/wastebin-post.lua "http://127.0.0.1:$wb_port"
            stop_pid "$wb_pid"
        fi
    done
    [ -n "$mongo_url" ] && stop_pid "$mongo_pid"
    kill -TERM "$up_pid" && wait "$up_pid" 2>/dev/null || true
    up_pid=""
}

# lt_run WHAT RUN BIN PORT: one loadtest --get run (1 thread, LT_CONNS connections),
# recorded with its CPU time per answered request (user + system, from time(1)).
lt_run() {
    local what=$1 r=$2 bin=$3 port=$4 rps cpu
    /usr/bin/time -o "$work/lt.time" -f "%U %S" "$bin" --get "http://127.0.0.1:$port/healthz" \
        --threads 1 -c "$lt_conns" -d "${dur}s" --warmup 0s --no-progress --json "$work/lt.json" \
        > "$work/lt.out" 2>&1
    rps=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["requests_per_second"]))' "$work/lt.json")
    cpu=$(awk -v r="$rps" -v d="$dur" '{printf "%.2f", ($1 + $2) * 1e6 / (r * d)}' "$work/lt.time")
    echo "loadtest $what $r $rps - $cpu" >> "$work/results"
    printf '  %-9s %-28s run %s %10s req/s  cpu/req %6s us\n' loadtest "$what" "$r" "$rps" "$cpu"
}

section_loadtest() {
    echo "## loadtest --get vs wrk on a bare hyper server, -c$lt_conns, 1 thread each"
    command -v /usr/bin/time >/dev/null || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 1; }
    local port pid_b
    port=$(free_port)
    start_bg pid_b "$lb_bench" backend "$port"
    wait_port "$port"
    for r in $(seq 1 "$runs"); do
        local saved=$conns out n rps p99 cpu
        conns=$lt_conns
        out=$( { /usr/bin/time -f "CPU %U %S" wrk -t1 -c"$conns" -d"${dur}s" "http://127.0.0.1:$port/healthz"; } 2>&1)
        conns=$saved
        rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        cpu=$(echo "$out" | awk -v n="$n" '/^CPU/ {printf "%.2f", ($2 + $3) * 1e6 / n}')
        echo "loadtest wrk $r $rps - $cpu" >> "$work/results"
        printf '  %-9s %-28s run %s %10s req/s  cpu/req %6s us\n' loadtest wrk "$r" "$rps" "$cpu"
        if [ -n "${LT_BEFORE:-}" ]; then
            lt_run loadtest-before "$r" "$LT_BEFORE" "$port"
        fi
        lt_run loadtest "$r" target/release/loadtest "$port"
    done
    stop_pid "$pid_b"
}

# rss_table LABEL: the RSS of the launcher and each component it started.
rss_table() {
    local label=$1 pid name
    for pid in "$up_pid" $(pgrep -P "$up_pid"); do
        name=$(tr '\0' ' ' < "/proc/$pid/cmdline" | awk '{for (i=2;i<=NF;i++) if ($i !~ /^-/ && $(i-1) !~ /^--/) {print $i; exit}}')
        [ "$pid" = "$up_pid" ] && name=launcher
        local rss
        rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
        echo "memory $label-$name-$pid 1 $rss MB" >> "$work/results"
        printf '  %-9s %-40s %s MB\n' memory "$label $name ($pid)" "$rss"
    done
}

section_memory() {
    echo "## memory: RSS of every process idle, then after $creates creates"
    start_stack 2
    sleep 1
    rss_table idle
    local done_creates=0 before n
    before=$(date +%s)
    while [ "$done_creates" -lt "$creates" ]; do
        n=$(wrk -t1 -c32 -d20s -s bench/post.lua "$url" | awk '/requests in/ {print $1}')
        done_creates=$((done_creates + n))
    done
    echo "  ($done_creates creates in $(( $(date +%s) - before )) s)"
    sleep 2
    rss_table "after-$done_creates-creates"
    if [ -n "${WASTEBIN:-}" ]; then
        local wb_port
        wb_port=$(free_port)
        wastebin_start "$wb_port" "$work/wastebin-mem.db"
        sleep 1
        printf '  %-9s %-28s %s MB\n' memory "idle wastebin" "$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$wb_pid/status")"
        stop_pid "$wb_pid"
    fi
    kill -TERM "$up_pid" && wait "$up_pid" 2>/dev/null || true
    up_pid=""
}

for s in "${sections[@]}"; do
    "section_$s"
done

echo
echo "## medians of $runs runs"
python3 - "$work/results" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: ([], [], []))
order = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 5 or parts[0] == "memory":
        continue
    key = (parts[0], parts[1])
    if key not in rows:
        order.append(key)
    try:
        rows[key][0].append(float(parts[3]))
    except ValueError:
        continue
    p99 = parts[4]
    if p99 not in ("-", ""):
        v = float(p99.rstrip("msu"))
        v = v / 1000 if p99.endswith("us") else v * 1000 if p99.endswith("s") and not p99.endswith("ms") else v
        rows[key][1].append(v)
    if len(parts) > 5 and parts[5] != "-":
        rows[key][2].append(float(parts[5]))
ref = {"proxy": "nginx-2-workers", "read": "wastebin-/raw/id", "create": "wastebin", "loadtest": "wrk"}
med = {k: statistics.median(v[0]) for k, v in rows.items() if v[0]}
print(f"{'section':<9} {'what':<28} {'req/s':>10} {'p99 ms':>8} {'ratio':>7} {'cpu us/req':>11}")
for k in order:
    if k not in med:
        continue
    p99 = f"{statistics.median(rows[k][1]):.2f}" if rows[k][1] else "-"
    r = (k[0], ref.get(k[0]))
    ratio = f"{med[k] / med[r]:.2f}x" if r in med and med[r] else ""
    cpu = f"{statistics.median(rows[k][2]):.2f}" if rows[k][2] else ""
    print(f"{k[0]:<9} {k[1]:<28} {med[k]:>10.0f} {p99:>8} {ratio:>7} {cpu:>11}")
PY
