#!/usr/bin/env bash
# Builds the Debian package of pgquorum (docs/install.md): the agent binary, the systemd unit,
# /etc/pgquorum, the man pages and the docs. No network, no debhelper: dpkg-deb alone.
#
#   scripts/make-deb.sh [--binary PATH] [--man DIR] [--output DIR] [--compression xz|gzip|none]
#                       [--allow-dynamic-swift]
#
# `make deb` builds the release binary with the Swift runtime linked in statically, generates
# the man pages and calls this. --allow-dynamic-swift packages a binary that still needs the
# Swift toolchain's libraries (the packaging test does, with the debug build).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
binary=$here/.build/release/pgquorum
man=""
output=$here/.build/deb
allow_dynamic=no
compression=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --man) man=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    --compression) compression=$2; shift 2 ;;
    --allow-dynamic-swift) allow_dynamic=yes; shift ;;
    *) echo "make-deb: unknown argument '$1' (use --binary PATH, --man DIR, --output DIR, --compression xz|gzip|none, --allow-dynamic-swift)" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "make-deb: $binary is not an executable; build it first (make deb does)" >&2; exit 1; }
for tool in dpkg-deb readelf ldconfig; do
  command -v "$tool" >/dev/null || { echo "make-deb: $tool is missing; apt-get install dpkg binutils libc-bin" >&2; exit 1; }
done

version=$("$binary" --version)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/pgquorum_${version}_${arch}

# Depends: the packages of the shared libraries the binary needs, found the way the loader does.
depends="postgresql-15, adduser"
for lib in $(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  case "$lib" in
    libswift*|libFoundation*|lib_FoundationICU*|libdispatch*|libBlocksRuntime*)
      if [ "$allow_dynamic" = no ]; then
        echo "make-deb: $binary links the Swift runtime ($lib) dynamically, which a server without Swift lacks; build it with --static-swift-stdlib (make deb does)" >&2
        exit 1
      fi
      continue ;;
  esac
  # (awk reads to the end: an early exit would kill the producer with SIGPIPE under pipefail)
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !found { print $NF; found = 1 }')
  [ -n "$path" ] || { echo "make-deb: $binary needs $lib, which is not installed here" >&2; exit 1; }
  package=""
  for candidate in "$path" "$(readlink -f "$path")" "/usr$path"; do
    package=$(dpkg -S "$candidate" 2>/dev/null | awk -F: 'NR == 1 { print $1 }') && [ -n "$package" ] && break
  done
  [ -n "$package" ] || { echo "make-deb: no installed package owns $path ($lib)" >&2; exit 1; }
  case ", $depends, " in *", $package, "*) ;; *) depends="$depends, $package" ;; esac
done

install -D -m 0755 "$binary" "$root/usr/bin/pgquorum"
install -D -m 0644 "$here/packaging/pgquorum.service" "$root/lib/systemd/system/pgquorum.service"
install -D -m 0640 "$here/packaging/pgquorum.env" "$root/etc/pgquorum/pgquorum.env"
install -D -m 0644 "$here/cluster-configs/three-dc.yaml" "$root/usr/share/doc/pgquorum/examples/cluster.yaml"
install -D -m 0644 "$here/README.md" "$root/usr/share/doc/pgquorum/README.md"
for doc in "$here"/docs/*.md; do install -D -m 0644 "$doc" "$root/usr/share/doc/pgquorum/$(basename "$doc")"; done
if [ -n "$man" ]; then
  install -d "$root/usr/share/man/man1"
  for page in "$man"/pgquorum.*1 "$man"/pgquorum.1; do
    [ -f "$page" ] || continue
    gzip -9n < "$page" > "$root/usr/share/man/man1/$(basename "$page").gz"
  done
fi

install -d "$root/DEBIAN"
for script in postinst prerm postrm; do install -m 0755 "$here/packaging/debian/$script" "$root/DEBIAN/$script"; done
echo /etc/pgquorum/pgquorum.env > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: pgquorum
Version: $version
Architecture: $arch
Maintainer: pgquorum developers <pgquorum@localhost>
Installed-Size: $size
Depends: $depends
Section: database
Priority: optional
Description: PostgreSQL high availability under a Raft quorum
 One pgquorum agent runs beside each PostgreSQL server. The agents elect a
 leader with Raft over mutual TLS, so only a quorum can promote a primary,
 and fence the old primary with a lease: never two servers accepting writes.
CONTROL

mkdir -p "$output"
dpkg-deb --root-owner-group "-Z$compression" --build "$root" "$output/pgquorum_${version}_${arch}.deb" >/dev/null
echo "$output/pgquorum_${version}_${arch}.deb"
