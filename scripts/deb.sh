#!/usr/bin/env bash
# Builds dist/switchyard_<version>_<arch>.deb with dpkg-deb: the binary,
# the config (a conffile), the systemd unit, logrotate, docs. No network:
# the Go module cache must already hold the dependencies (make test or
# go mod download fills it).
set -euo pipefail
cd "$(dirname "$0")/.."

arch=$(dpkg --print-architecture)
hash=$(git rev-parse --short HEAD 2>/dev/null || echo 0)
count=$(git rev-list --count HEAD 2>/dev/null || echo 0)
version="0.1.0+${count}.g${hash}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"

GOPROXY=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${version}" \
	-o "$root/usr/bin/switchyard" ./cmd/switchyard

install -D -m 0644 deploy/debian/switchyard.service "$root/lib/systemd/system/switchyard.service"
install -D -m 0644 deploy/debian/switchyard.logrotate "$root/etc/logrotate.d/switchyard"
install -D -m 0640 deploy/debian/default "$root/etc/default/switchyard"
install -D -m 0640 conf/switchyard.example.yaml "$root/etc/switchyard/switchyard.yaml"
# Under the unit, state and log live in the directories systemd gives it.
sed -i -e 's|^  state_file: ""  .*|  state_file: /var/lib/switchyard/state.json   # topology and epoch persisted here|' \
	-e 's|^  file: ""  .*|  file: /var/log/switchyard/switchyard.log   # SIGUSR1 reopens it (logrotate)|' \
	"$root/etc/switchyard/switchyard.yaml"
grep -q '^  state_file: /var/lib/switchyard/state.json' "$root/etc/switchyard/switchyard.yaml"
grep -q '^  file: /var/log/switchyard/switchyard.log' "$root/etc/switchyard/switchyard.yaml"
install -D -m 0755 conf/hooks/move-vip.sh "$root/usr/share/switchyard/hooks/move-vip.sh"
for f in README.md docs/*.md NOTICE; do
	install -D -m 0644 "$f" "$root/usr/share/doc/switchyard/$(basename "$f")"
done
# Debian's machine-readable copyright file: Apache-2.0, whose text every
# Debian system has in /usr/share/common-licenses.
cat > "$root/usr/share/doc/switchyard/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: switchyard
Source: https://github.com/switchyard/switchyard

Files: *
Copyright: 2026 The Switchyard developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0. Attribution notices of the works
 the binary includes are in /usr/share/doc/switchyard/NOTICE.
COPYRIGHT
install -d "$root/usr/share/switchyard/deploy"
cp -r deploy/grafana deploy/prometheus "$root/usr/share/switchyard/deploy/"

mkdir -p "$root/DEBIAN"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
printf '/etc/switchyard/switchyard.yaml\n/etc/default/switchyard\n/etc/logrotate.d/switchyard\n' > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: switchyard
Version: ${version}
Architecture: ${arch}
Maintainer: Switchyard developers <switchyard@localhost>
Installed-Size: ${size}
Depends: adduser
Recommends: logrotate
Section: database
Priority: optional
Homepage: https://github.com/switchyard/switchyard
Description: MySQL/MariaDB proxy with read/write split and failover
 One process in place of a read/write-split proxy (Mycat, Amoeba,
 ProxySQL), a failover manager (MHA) and the virtual IP its scripts move.
 Applications connect to it as to MySQL; it routes writes to the master
 and reads to healthy replicas, and promotes a replica when the master
 fails, without losing an acknowledged write.
CONTROL

mkdir -p dist
out="dist/switchyard_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "$out"
