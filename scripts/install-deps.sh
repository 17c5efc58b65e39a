#!/usr/bin/env bash
# Installs what building and testing pgquorum needs and is missing. Idempotent; silent when
# everything is present. Debian/Ubuntu packages are installed with apt-get (root, or sudo).
set -euo pipefail

# What the Swift toolchain needs at build and link time on Debian 12.
APT_PACKAGES=(
  binutils git make pkg-config tzdata
  libc6-dev libgcc-12-dev libstdc++-12-dev libedit2 libncurses-dev libxml2-dev zlib1g-dev
  # The partition lab (network namespaces, firewall rules) and its tests.
  iproute2 iptables util-linux
  # HAProxy in front of the lab (the load-balancer test); wrk for pgquorum-bench overload.
  haproxy wrk
  # PostgreSQL 15: libpq to build against, the server programs for the tests (and the agent).
  libpq-dev postgresql-15
)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); elif command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "install-deps: missing packages ${missing[*]}; run as root or install them: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  for dir in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    if [ -x "$dir/swift" ]; then
      echo "install-deps: swift is in $dir but not on PATH; add it: export PATH=$dir:\$PATH" >&2
      exit 1
    fi
  done
  echo "install-deps: the Swift 6.2+ toolchain is missing; install it from swift.org (Debian has no package for it)" >&2
  exit 1
fi

version=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -1)
case "$version" in
  6.[2-9]*|6.[1-9][0-9]*|[7-9].*) ;;
  *) echo "install-deps: Swift $version found; pgquorum needs Swift 6.2 or newer" >&2; exit 1 ;;
esac
