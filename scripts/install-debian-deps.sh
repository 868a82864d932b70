#!/usr/bin/env bash
# Install the Debian packages listed in requirements/debian-*.txt (one name a line, '#' comments),
# only those missing: dpkg-query first, apt-get only for what is absent, so a warm machine
# spends no time here.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pkgs < <(cat requirements/debian-*.txt | sed 's/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "install-debian-deps: need root to install: ${missing[*]}" >&2; exit 1; }
echo "install-debian-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
