#!/usr/bin/env bash
# Installs what Switchyard's sandbox and tests need on Debian: the MariaDB
# server and client, and the client drivers the driver matrix runs (PHP
# mysqli/PDO, PyMySQL, mysqlclient, DBD::MariaDB, MariaDB Connector/J,
# Ruby mysql2, node mysql2 from npm, tmux for the CLI's Ctrl-C), and the
# tools the packaging, status-page and alert-rule tests drive; with
# "bench", also sysbench and haproxy (the L4 relay make bench compares
# against) and valgrind (instruction counts). Safe to run repeatedly: only what is missing is installed.
# Also builds the Debian sid chroot Oracle MySQL 9.7 runs from.
# Must run as root (or via sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

updated=""
install() { # install Debian packages, running apt-get update once
  [ $# -gt 0 ] || return 0
  if [ -z "$updated" ]; then $SUDO apt-get update -qq; updated=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

if [ "${1:-}" = "bench" ]; then
  want=()
  have sysbench || want+=(sysbench)
  have haproxy || want+=(haproxy)
  have valgrind || want+=(valgrind) # instructions per statement (scripts/instructions.sh)
  install "${want[@]}"
  # The package may start its own haproxy service: the benchmark runs its own.
  if [ -f /run/haproxy.pid ]; then $SUDO kill "$(cat /run/haproxy.pid)" 2>/dev/null || true; fi
  echo "sysbench $(sysbench --version | awk '{print $2}'), $(haproxy -v | head -1 | awk '{print $1, $3}')"
  exit 0
fi

want=()
{ have mariadbd || [ -x /usr/sbin/mariadbd ]; } || want+=(mariadb-server)
have mariadb || want+=(mariadb-client)
# Client drivers (test/drivers).
for pkg in php-cli php-mysql python3-pymysql python3-mysqldb libdbd-mariadb-perl libmariadb-java ruby-mysql2 tmux mariadb-test; do
  installed "$pkg" || want+=("$pkg")
done
have java || want+=(default-jre-headless)
# The package test (.deb: dpkg-deb, apt, systemd-analyze), the status page
# in a real browser (chromium + chromedriver), the alert rules (promtool).
have systemd-analyze || want+=(systemd)
installed adduser || want+=(adduser)
have chromium || want+=(chromium)
have chromedriver || want+=(chromium-driver)
have promtool || want+=(prometheus)
have node || want+=(nodejs)
have npm || want+=(npm)
new_server=""
[[ " ${want[*]} " == *" mariadb-server "* ]] && new_server=1
install "${want[@]}"

if [ -n "$new_server" ]; then
  # The package may start the distribution's own server on port 3306.
  # Stop it by its pid file (never by name: sandbox servers are mariadbd too).
  for pidfile in /run/mysqld/mysqld.pid /var/run/mysqld/mysqld.pid; do
    if [ -f "$pidfile" ]; then
      pid="$(cat "$pidfile")"
      $SUDO kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
  done
  echo "mariadb-server installed: $(mariadbd --version 2>/dev/null || /usr/sbin/mariadbd --version)"
fi

# node mysql2 for the driver matrix, at the version package.json pins.
if [ ! -d test/drivers/node/node_modules/mysql2 ]; then
  (cd test/drivers/node && npm ci --no-audit --no-fund --loglevel=error)
fi

# Oracle MySQL 9.7 LTS, the second backend flavour the tests run against:
# Debian 12 cannot install it (it needs sid's glibc), so it runs from a sid
# chroot built once per machine (about 90 s; then cached). The sandbox
# would build it on first use too; doing it here keeps the time visible.
start=$(date +%s)
root=$($SUDO bash sandbox/mysql-chroot.sh)
[ -x "$root/usr/sbin/mysqld" ] || { echo "MySQL chroot in $root has no mysqld" >&2; exit 1; }
echo "MySQL chroot: $root ($(( $(date +%s) - start ))s)"
