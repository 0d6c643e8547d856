#!/bin/sh
# Example hook: move a virtual IP to the new master.
# Use as hooks.post_failover and hooks.post_switchover. Switchyard sets
#   SWITCHYARD_EVENT, SWITCHYARD_OLD_MASTER(_NAME), SWITCHYARD_NEW_MASTER(_NAME)
# Configure with:
#   VIP               address with prefix, e.g. 10.0.0.100/32 (required)
#   VIP_DEV           interface on the servers (default eth0)
#   VIP_NETNS_PREFIX  servers are network namespaces named PREFIX<backend name>
#                     (local demos and tests); otherwise:
#   VIP_SSH_USER      ssh to the old and new master hosts (default root)
# A failing command makes the hook fail; Swityard logs it. For pre_failover
# a failure aborts the failover.
set -eu
: "${VIP:?set VIP, e.g. VIP=10.0.0.100/32}"
DEV="${VIP_DEV:-eth0}"
old_name="${SWITCHYARD_OLD_MASTER_NAME:-}"
new_name="${SWITCHYARD_NEW_MASTER_NAME:?no new master}"
old_host="${SWITCHYARD_OLD_MASTER%:*}"
new_host="${SWITCHYARD_NEW_MASTER%:*}"

on() { # on NAME HOST cmd...: run a command where the server NAME lives
  name="$1"; host="$2"; shift 2
  if [ -n "${VIP_NETNS_PREFIX:-}" ]; then
    ip netns exec "${VIP_NETNS_PREFIX}${name}" "$@"
  else
    ssh -o BatchMode=yes -o ConnectTimeout=3 "${VIP_SSH_USER:-root}@${host}" "$@"
  fi
}

# The old master may be dead or unreachable: removing the address there is
# best effort (fencing already happened in Switchyard).
if [ -n "$old_name" ]; then
  on "$old_name" "$old_host" ip addr del "$VIP" dev "$DEV" 2>/dev/null || true
fi
on "$new_name" "$new_host" ip addr replace "$VIP" dev "$DEV"
# Tell neighbours (real networks only; harmless in a namespace).
if command -v arping >/dev/null 2>&1 && [ -z "${VIP_NETNS_PREFIX:-}" ]; then
  on "$new_name" "$new_host" arping -c 2 -U -I "$DEV" "${VIP%/*}" >/dev/null 2>&1 || true
fi
echo "VIP $VIP moved to $new_name"
