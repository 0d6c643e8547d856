#!/usr/bin/env bash
# Builds (once per machine) a Debian sid chroot with Oracle MySQL's server
# (package mysql-server-core, MySQL 9.7 LTS), which Debian 12 cannot
# install: it needs sid's glibc. The sandbox runs mysqld from it on
# loopback (switchyard sandbox up --flavor mysql, which embeds and runs
# this script). Cached under
# /var/cache/switchyard: the chroot itself and a tarball of it, so a
# removed chroot is restored in seconds. Prints the chroot's path.
# Must run as root.
set -euo pipefail

cache=${SWITCHYARD_CACHE:-/var/cache/switchyard}
root="$cache/mysql-sid"
tarball="$cache/mysql-sid.tar.gz"
stamp="$root/.switchyard-ready"

if [ -f "$stamp" ]; then
  echo "$root"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.mysql-sid.lock"
flock 9
if [ -f "$stamp" ]; then echo "$root"; exit 0; fi

start=$(date +%s)
if [ -f "$tarball" ]; then
  rm -rf "$root"
  mkdir -p "$root"
  tar -xzf "$tarball" -C "$root"
  echo "mysql chroot restored from $tarball in $(( $(date +%s) - start ))s" >&2
  echo "$root"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
# The mirror the host uses (its sources name it).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$root"
debootstrap --variant=minbase sid "$root" "$mirror" >&2
# A frozen mirror's Release files may be past Valid-Until; no service may
# start inside the chroot during installs.
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99switchyard"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get update -qq >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mysql-server-core mysql-client-core >&2
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/archives/"*.deb
version=$(chroot "$root" mysqld --version)
touch "$stamp"
tar -czf "$tarball.tmp" -C "$root" . && mv "$tarball.tmp" "$tarball"
echo "mysql chroot built in $(( $(date +%s) - start ))s: $version" >&2
echo "$root"
