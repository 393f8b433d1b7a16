#!/usr/bin/env bash
# Builds the lab's base image from Debian's packages, with no container registry:
# a Debian testing (forky) root made by debootstrap, holding Asterisk 22, its English
# core sounds and redis-server, imported into Docker as $BASE_IMAGE.
#
# It does nothing when the image is already present (pass --force to rebuild).
# Needs root, Docker, and the Debian mirror this machine's apt sources name.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-presenced-lab-base:forky}
force=${1:-}

if [[ "$force" != "--force" ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
	echo "build-base: $BASE_IMAGE already present"
	exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
	# Another apt (a test installing its own tools) may hold the lock: wait for it.
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
fi

# The mirror this machine already uses; never a hard-coded host.
mirror=""
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
	mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [[ -z "$mirror" && -f /etc/apt/sources.list ]]; then
	mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
fi
if [[ -z "$mirror" ]]; then
	echo "build-base: no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
	exit 1
fi

root=$(mktemp -d /var/tmp/presenced-lab-root.XXXXXX)
trap 'rm -rf "$root"' EXIT

# bookworm's debootstrap has no script named forky; sid's serves it.
script=/usr/share/debootstrap/scripts/sid
echo "build-base: debootstrap forky from $mirror into $root"
debootstrap --variant=minbase forky "$root" "$mirror" "$script" >/dev/null

cp /etc/resolv.conf "$root/etc/resolv.conf"
apt_opts=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3)
chroot "$root" apt-get "${apt_opts[@]}" update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq \
	--no-install-recommends asterisk asterisk-core-sounds-en-gsm redis-server >/dev/null
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/etc/resolv.conf
version=$(chroot "$root" asterisk -V)
echo "build-base: $version"
case "$version" in
"Asterisk 22."*) ;;
*)
	echo "build-base: expected Asterisk 22.x, the root has: $version" >&2
	exit 1
	;;
esac

tar -C "$root" -c . | docker import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	- "$BASE_IMAGE" >/dev/null
echo "build-base: imported $BASE_IMAGE"
