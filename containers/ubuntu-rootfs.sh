#!/usr/bin/env bash
# Ubuntu 24.04 LTS ("noble", the OS of NVIDIA's PyTorch 24.11 image) as a local container image,
# built with debootstrap from the Ubuntu archive: for hosts that reach the package archives but
# no container registry (so cannot pull docker.io/library/ubuntu:24.04). Needs root, debootstrap,
# curl and dpkg-deb; x86_64 (amd64) only.
#
#   containers/ubuntu-rootfs.sh [TAG]     # default TAG: localhost/charlm-ubuntu:24.04
#
# ENGINE (podman or docker, default podman) imports the root filesystem; UBUNTU_MIRROR (default
# http://archive.ubuntu.com/ubuntu) is the archive. An existing TAG is kept (delete it to rebuild).
# The image holds a minimal system plus Python (python3, python-is-python3, ca-certificates),
# from the release pocket: Python 3.12.3 as in the NVIDIA image (no pip: the stand-in adds its own).
# Offline, it stops within a minute naming the URL it could not fetch.
set -euo pipefail

tag=${1:-localhost/charlm-ubuntu:24.04}
engine=${ENGINE:-podman}
mirror=${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
suite=noble
packages=python3,python-is-python3,ca-certificates
# The archive keyring package, pinned by its SHA-256; its key "Ubuntu Archive Automatic Signing
# Key (2018)" has fingerprint F6EC B376 2474 EDA9 D21B 7022 8719 20D1 991B C93C.
keyring_deb=pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb
keyring_sha256=36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8

die() { echo "ubuntu-rootfs: $*" >&2; exit 1; }

if "$engine" image inspect "$tag" > /dev/null 2>&1; then
    echo "ubuntu-rootfs: $tag exists (delete it to rebuild)"
    exit 0
fi
[ "$(uname -m)" = x86_64 ] || die "amd64 only (this machine is $(uname -m))"
[ "$(id -u)" = 0 ] || die "debootstrap needs root: run as root (sudo)"
for tool in debootstrap curl dpkg-deb tar; do
    command -v "$tool" > /dev/null || die "$tool is missing (Debian/Ubuntu: apt-get install $tool)"
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/charlm-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT

url="$mirror/$keyring_deb"
curl -fsS --connect-timeout 20 --max-time 60 -o "$work/keyring.deb" "$url" \
    || die "could not fetch $url (is the Ubuntu archive reachable? set UBUNTU_MIRROR)"
echo "$keyring_sha256  $work/keyring.deb" | sha256sum --check --quiet \
    || die "$url does not have the pinned SHA-256 $keyring_sha256"
dpkg-deb --extract "$work/keyring.deb" "$work/keyring"

echo "ubuntu-rootfs: debootstrap $suite from $mirror (a few minutes)"
# Debian's debootstrap may predate noble: Ubuntu's suites all use the "gutsy" script
debootstrap --variant=minbase --components=main,universe --include="$packages" \
    --keyring="$work/keyring/usr/share/keyrings/ubuntu-archive-keyring.gpg" \
    "$suite" "$work/rootfs" "$mirror" /usr/share/debootstrap/scripts/gutsy \
    > "$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# apt sources as in Ubuntu's own image (release, updates, security), no package lists kept
rm -f "$work/rootfs/etc/apt/sources.list"
cat > "$work/rootfs/etc/apt/sources.list.d/ubuntu.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates $suite-security
Components: main universe
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
SOURCES
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin \
    "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/log/"*.log

tar --numeric-owner -C "$work/rootfs" -c . \
    | "$engine" import --change 'CMD ["/bin/bash"]' - "$tag" > /dev/null
echo "ubuntu-rootfs: built $tag"
