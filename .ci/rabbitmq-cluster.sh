#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for the tests of what the death
# of a node does to quorum queues and their clients. It runs beside the broker of
# .ci/rabbitmq.sh (rabbit@localhost on 5672) and never touches it: its nodes have
# their own names, ports, data, logs and configuration files.
#
#   bash .ci/rabbitmq-cluster.sh check         # exit status 0 if it can run here, else 3
#   bash .ci/rabbitmq-cluster.sh start         # idempotent; prints the 3 AMQP URIs
#   bash .ci/rabbitmq-cluster.sh status        # exit status 0 when 3 nodes run
#   bash .ci/rabbitmq-cluster.sh stop-node N   # node N's Erlang VM shuts down
#   bash .ci/rabbitmq-cluster.sh kill-node N   # node N's VM gets SIGKILL (a crash)
#   bash .ci/rabbitmq-cluster.sh start-node N  # node N boots again and rejoins
#   bash .ci/rabbitmq-cluster.sh leader QUEUE [VHOST]  # the quorum queue's leader
#   bash .ci/rabbitmq-cluster.sh stop          # stops the 3 nodes, deletes their data
#
# Nodes shimeji1..3@localhost: AMQP on 127.0.0.1:5681..5683, Erlang distribution
# on 25681..25683, data, logs and configuration under $SHIMEJI_CLUSTER_DIR
# (default /tmp/shimeji-rabbit-cluster). The nodes run as root with the Erlang
# cookie of the rabbitmq user (copied), so `rabbitmqctl -n shimeji1@localhost`
# works as for the main broker. Exit status 3: RabbitMQ is not installed, or
# this user cannot run it (callers skip).
set -euo pipefail

DIR="${SHIMEJI_CLUSTER_DIR:-/tmp/shimeji-rabbit-cluster}"
SBIN=/usr/lib/rabbitmq/bin
COOKIE=/var/lib/rabbitmq/.erlang.cookie
NODES=(1 2 3)

log() { echo "rabbitmq-cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }
skip() { log "$*"; exit 3; }

usage() {
    sed -n '7,14p' "$0" | sed 's/^# *//' >&2
    exit 2
}

[ $# -ge 1 ] || usage

if [ ! -x "$SBIN/rabbitmq-server" ]; then
    skip "RabbitMQ is not installed (no $SBIN/rabbitmq-server): run .ci/rabbitmq.sh"
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n SHIMEJI_CLUSTER_DIR="$DIR" bash "$0" "$@"
    fi
    skip "needs root (or password-less sudo) to use the rabbitmq user's Erlang cookie"
fi

name() { echo "shimeji$1@localhost"; }
amqp_port() { echo $((5680 + $1)); }
dist_port() { echo $((25680 + $1)); }
node_dir() { echo "$DIR/shimeji$1"; }
uri() { echo "amqp://guest:guest@127.0.0.1:$(amqp_port "$1")//"; }

check_node_number() {
    case "${1:-}" in
        1 | 2 | 3) ;;
        *) die "node number must be 1, 2 or 3, not '${1:-}'" ;;
    esac
}

# rabbitmqctl for one node, as root, with the copied cookie; bounded in time
# (CTL_TIMEOUT seconds) so that a hung node cannot hang the caller.
ctl() {
    local n=$1
    shift
    timeout "${CTL_TIMEOUT:-60}" env HOME="$DIR/home" \
        "$SBIN/rabbitmqctl" -q -n "$(name "$n")" "$@"
}

# The operating system pid of node N's VM, if it runs (from its pid file).
vm_pid() {
    local pid
    pid=$(cat "$(node_dir "$1")/pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qa -- "-shimeji_cluster_node" "/proc/$pid/cmdline" \
        && echo "$pid"
}

# Pids of every VM of this cluster still alive, found by the marker argument
# each node is started with (survives a lost pid file).
cluster_pids() {
    local f pid
    for f in /proc/[0-9]*/cmdline; do
        if grep -qa -- "-shimeji_cluster_node" "$f" 2>/dev/null; then
            pid=${f#/proc/}
            echo "${pid%/cmdline}"
        fi
    done
}

# The running nodes of the cluster as node N sees it, one name a line.
running_nodes() {
    ctl "$1" cluster_status --formatter json 2>/dev/null \
        | sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' | tr -d '"' | tr ',' '\n' \
        | grep . || true
}

app_running() { CTL_TIMEOUT=20 ctl "$1" eval 'rabbit:is_running().' 2>/dev/null | grep -qx true; }

# Configuration of each node and the cookie, written on every start (cheap).
prepare() {
    local n d
    mkdir -p "$DIR/home"
    chmod 700 "$DIR/home"
    [ -r "$COOKIE" ] || skip "no Erlang cookie at $COOKIE: start the main broker first (.ci/rabbitmq.sh)"
    if ! cmp -s "$COOKIE" "$DIR/home/.erlang.cookie"; then
        install -m 400 "$COOKIE" "$DIR/home/.erlang.cookie"
    fi
    for n in "${NODES[@]}"; do
        d=$(node_dir "$n")
        mkdir -p "$d/log"
        # Own files for everything /etc/rabbitmq would otherwise provide (the
        # 5672 listener, the node name, the enabled plugins).
        cat >"$d/rabbitmq-env.conf" <<EOF
NODENAME=$(name "$n")
DIST_PORT=$(dist_port "$n")
CONFIG_FILE=$d/rabbitmq.conf
ADVANCED_CONFIG_FILE=$d/advanced.config
ENABLED_PLUGINS_FILE=$d/enabled_plugins
MNESIA_BASE=$d/mnesia
LOG_BASE=$d/log
PID_FILE=$d/pid
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -shimeji_cluster_node $n"
EOF
        cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
EOF
        echo "[]." >"$d/enabled_plugins"
    done
}

# Boots node N's VM in the background (with whatever data it has).
boot() {
    local d
    d=$(node_dir "$1")
    rm -f "$d/pid"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 HOME="$DIR/home" RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
        "$SBIN/rabbitmq-server" -detached >"$d/log/startup.log" 2>&1 \
        || die "node $1 did not start: see $d/log/startup.log"
}

# Waits until node N's app has started.
await_boot() {
    local d
    d=$(node_dir "$1")
    for _ in $(seq 1 100); do [ -s "$d/pid" ] && break; sleep 0.1; done
    if ! CTL_TIMEOUT=180 ctl "$1" wait "$d/pid" --timeout 170 >/dev/null 2>&1; then
        die "node $1 did not start: see $d/log/"
    fi
}

# Makes node N a member of node 1's cluster unless it is one already.
join() {
    if running_nodes "$1" | grep -qx "$(name 1)"; then return 0; fi
    local out
    out="$(node_dir "$1")/log/join.log"
    log "$(name "$1") joins $(name 1)"
    # The CLI relays the node's warnings of the join (feature flags, tracking
    # tables): kept in join.log, shown only if the join fails.
    if ! { ctl "$1" stop_app && ctl "$1" join_cluster "$(name 1)" && ctl "$1" start_app; } \
        >"$out" 2>&1; then
        cat "$out" >&2
        die "$(name "$1") could not join $(name 1): try stop, then start"
    fi
}

# Waits for the cluster to have its 3 nodes running, as node 1 sees it.
await_three() {
    local count=0
    for _ in $(seq 1 60); do
        count=$(running_nodes 1 | wc -l)
        [ "$count" -eq 3 ] && return 0
        sleep 1
    done
    die "the cluster has $count running nodes, not 3: see $DIR/shimeji*/log/"
}

print_uris() {
    local n
    for n in "${NODES[@]}"; do uri "$n"; done
}

cmd_start() {
    local n up=() down=() vm_only=()
    prepare
    # Fast path: already running (one CLI call).
    if vm_pid 1 >/dev/null && [ "$(running_nodes 1 | wc -l)" -eq 3 ]; then
        log "cluster running"
        print_uris
        return 0
    fi
    for n in "${NODES[@]}"; do
        if vm_pid "$n" >/dev/null; then
            if app_running "$n"; then up+=("$n"); else vm_only+=("$n"); fi
        else
            down+=("$n")
        fi
    done
    if [ ${#up[@]} -eq 0 ] && [ ${#vm_only[@]} -eq 0 ]; then
        # From nothing: no stale cluster membership from an earlier run.
        for n in "${NODES[@]}"; do rm -rf "$(node_dir "$n")/mnesia"; done
    fi
    for n in "${down[@]}"; do
        log "starting $(name "$n") on 127.0.0.1:$(amqp_port "$n")"
        boot "$n"
    done
    for n in "${vm_only[@]}"; do
        log "starting the app of $(name "$n")"
        ctl "$n" start_app >/dev/null
    done
    # Boot in parallel: restarted members wait for each other's tables.
    local pids=()
    for n in "${down[@]}"; do
        await_boot "$n" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
    join 2
    join 3
    await_three
    log "cluster of 3 running nodes: $(running_nodes 1 | tr '\n' ' ')"
    print_uris
}

cmd_stop_node() {
    local n=$1 pid
    check_node_number "$n"
    pid=$(vm_pid "$n") || { log "$(name "$n") is not running"; return 0; }
    CTL_TIMEOUT=120 ctl "$n" shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
        log "$(name "$n") did not shut down: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$(name "$n") stopped"
}

cmd_kill_node() {
    local n=$1 pid
    check_node_number "$n"
    pid=$(vm_pid "$n") || { log "$(name "$n") is not running"; return 0; }
    kill -KILL "$pid"
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    log "$(name "$n") killed"
}

cmd_start_node() {
    local n=$1
    check_node_number "$n"
    prepare
    if vm_pid "$n" >/dev/null; then
        app_running "$n" || ctl "$n" start_app >/dev/null
    else
        log "starting $(name "$n")"
        boot "$n"
        await_boot "$n"
    fi
    # A node that was in the cluster rejoins it by itself as it boots.
    if [ "$n" -ne 1 ]; then join "$n"; fi
    log "$(name "$n") running; cluster: $(running_nodes "$n" | tr '\n' ' ')"
    uri "$n"
}

cmd_stop() {
    local n pid pids=()
    for n in "${NODES[@]}"; do
        if vm_pid "$n" >/dev/null; then
            cmd_stop_node "$n" &
            pids+=($!)
        fi
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    for pid in $(cluster_pids); do
        log "killing leftover VM $pid"
        kill -KILL "$pid" 2>/dev/null || true
    done
    for n in "${NODES[@]}"; do rm -rf "$(node_dir "$n")/mnesia" "$(node_dir "$n")/pid"; done
    log "cluster stopped"
}

cmd_status() {
    local n pid seen="" count=0
    for n in "${NODES[@]}"; do
        if pid=$(vm_pid "$n"); then
            if app_running "$n"; then
                echo "$(name "$n") running (pid $pid) $(uri "$n")"
                [ -n "$seen" ] || seen=$n
            else
                echo "$(name "$n") VM up, app stopped (pid $pid)"
            fi
        else
            echo "$(name "$n") down"
        fi
    done
    if [ -n "$seen" ]; then
        count=$(running_nodes "$seen" | wc -l)
        echo "running cluster members (as $(name "$seen") sees it): $count"
    fi
    [ "$count" -eq 3 ]
}

cmd_leader() {
    local queue=${1:?queue name required} vhost=${2:-/} n leader
    for n in "${NODES[@]}"; do
        vm_pid "$n" >/dev/null || continue
        if leader=$(CTL_TIMEOUT=30 ctl "$n" list_queues -p "$vhost" --no-table-headers \
            name type leader 2>/dev/null); then
            leader=$(awk -F'\t' -v q="$queue" '$1 == q && $2 == "quorum" {print $3}' <<<"$leader")
            [ -n "$leader" ] || die "no quorum queue '$queue' in vhost '$vhost'"
            echo "$leader"
            return 0
        fi
    done
    die "no running node to ask"
}

case "$1" in
    check) prepare ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    stop-node) cmd_stop_node "${2:-}" ;;
    kill-node) cmd_kill_node "${2:-}" ;;
    start-node) cmd_start_node "${2:-}" ;;
    leader) shift; cmd_leader "$@" ;;
    *) usage ;;
esac
