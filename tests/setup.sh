#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages: each area adds its own step.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real-time e2e: the official phoenix and botframework-directlinejs npm clients and Web Chat's
# bundle (tests/e2e/node/package.json) ...
if ! command -v npm >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q nodejs npm
fi
(cd tests/e2e/node && npm install --no-audit --no-fund --loglevel=error)
# ... and Debian's Chromium for the browser tests (driven by Playwright with executable_path).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q chromium
fi
# HTTPS and service tests (tests/integration/deploy): Debian's pebble (the ACME test server and
# its DNS stand-in, pebble-challtestsrv) and systemd-analyze (systemd) for the unit file.
if ! command -v pebble >/dev/null 2>&1 || ! command -v pebble-challtestsrv >/dev/null 2>&1 \
        || ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q pebble systemd
fi
# PostgreSQL backend tests (tests/support/postgres.py starts throwaway clusters with initdb and
# pg_ctl): Debian's postgresql package (server binaries, and citext, which the schema uses).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q postgresql
    # Debian creates and starts a default cluster; the tests use their own: stop it.
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do
            pg_ctlcluster ${c%/*} ${c#*/} stop 2>/dev/null || true
        done
    fi
fi
# Multi-node tests (tests/support/netns.py): each node in a network namespace of its own, made
# with `ip netns` and veth pairs from iproute2 (without it, or without root, they run on loopback).
if ! command -v ip >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q iproute2
fi
# Activity event stream tests (tests/integration/events, tests/support/brokers.py): Debian's
# nats-server (JetStream) and rabbitmq-server, each started by the tests on a free loopback port
# in a temp directory. Debian may start a default RabbitMQ node under systemd: the tests don't use it.
if ! command -v nats-server >/dev/null 2>&1 || ! command -v rabbitmq-server >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q nats-server rabbitmq-server
fi
