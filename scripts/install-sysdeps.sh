#!/usr/bin/env bash
# System packages the test suite needs. Installs them as root; otherwise prints the command.
set -euo pipefail
PKGS=()
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || PKGS+=("$1"); }
# (populated by later features: libvirt/qemu for deploy tests, chromium for dashboard tests)
for p in ${DVMS_SYSDEPS:-}; do need "$p"; done
if [ ${#PKGS[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "dvms: system packages missing; run as root: apt-get install -y --no-install-recommends ${PKGS[*]}" >&2
  exit 1
fi
echo "dvms: installing system packages: ${PKGS[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null
