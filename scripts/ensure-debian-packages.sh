#!/usr/bin/env bash
# Install the named Debian packages when they are missing: `scripts/ensure-debian-packages.sh postgresql redis-server`.
# Used by `make e2e` (PostgreSQL, Redis) and the UI tests (chromium). Exit codes: 0 all present or
# installed; 3 some are missing and this machine cannot install them (no root or no apt-get): the
# caller decides how loudly to fail.
set -euo pipefail

missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-debian-packages: missing ${missing[*]} and cannot install them here (needs root and apt-get)" >&2
    exit 3
fi
echo "ensure-debian-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A lock held by another apt run is waited for rather than failed on.
apt_opts=(-o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
apt-get -o DPkg::Lock::Timeout=300 -q update >/dev/null
apt-get "${apt_opts[@]}" install "${missing[@]}" >/dev/null
