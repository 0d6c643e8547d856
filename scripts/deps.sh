#!/usr/bin/env bash
# Installs what Switchyard's sandbox and tests need on Debian: the MariaDB
# server and client; with "bench", also sysbench and haproxy (the L4 relay
# make bench compares against). Safe to run repeatedly. Must run as root
# (or via sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

if [ "${1:-}" = "bench" ]; then
  if ! command -v sysbench >/dev/null 2>&1 || ! command -v haproxy >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq sysbench haproxy >/dev/null
    # The package may start its own haproxy service: the benchmark runs its own.
    if [ -f /run/haproxy.pid ]; then $SUDO kill "$(cat /run/haproxy.pid)" 2>/dev/null || true; fi
  fi
  echo "sysbench $(sysbench --version | awk '{print $2}'), $(haproxy -v | head -1 | awk '{print $1, $3}')"
  exit 0
fi

if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
  if command -v mariadb >/dev/null 2>&1; then
    exit 0
  fi
fi

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq mariadb-server mariadb-client >/dev/null

# The package may start the distribution's own server on port 3306. Stop
# it by its pid file (never by name: sandbox servers are mariadbd too).
for pidfile in /run/mysqld/mysqld.pid /var/run/mysqld/mysqld.pid; do
  if [ -f "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
done
echo "mariadb-server installed: $(mariadbd --version 2>/dev/null || /usr/sbin/mariadbd --version)"
