#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on localhost:5672 (guest/guest), for the
# AMQP tests and benchmarks: start it if it is installed but down, install it
# with apt if it is missing, then wait until it has started.
#
#   bash .ci/rabbitmq.sh            # idempotent; prints what it did
set -euo pipefail

log() { echo "rabbitmq.sh: $*"; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

running() { $SUDO rabbitmqctl -q status >/dev/null 2>&1; }

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
    log "RabbitMQ is not installed; installing it with apt"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
fi
export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"

if running; then
    log "RabbitMQ is running"
else
    log "starting RabbitMQ"
    # The Debian package may have started it through its init script already.
    $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
fi

# Waits for the node to boot; a broker that is already up answers at once.
if ! $SUDO timeout 120 rabbitmqctl -q await_startup --timeout 110 >/dev/null 2>&1; then
    # A node that was never started since boot has no pid file for await_startup
    # to follow: give it time and check the status instead.
    for _ in $(seq 1 60); do
        if running; then break; fi
        sleep 2
    done
fi
if ! running; then
    log "RabbitMQ did not start; see /var/log/rabbitmq/" >&2
    exit 1
fi
# The tests log in as guest from localhost (the default user of a fresh install).
log "ready: $($SUDO rabbitmqctl -q version 2>/dev/null || echo unknown version) on localhost:5672"
