#!/usr/bin/env bash
# System packages the test suite needs, listed one per line in scripts/sysdeps/*.txt
# (# comments allowed). Installs missing ones as root; otherwise prints the exact command.
set -euo pipefail
cd "$(dirname "$0")"
PKGS=()
for f in sysdeps/*.txt; do
  [ -e "$f" ] || continue
  while read -r p _; do
    case "$p" in ""|\#*) continue;; esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || PKGS+=("$p")
  done < "$f"
done
[ ${#PKGS[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "dvms: system packages missing; run as root: apt-get install -y --no-install-recommends ${PKGS[*]}" >&2
  exit 1
fi
echo "dvms: installing system packages: ${PKGS[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null
