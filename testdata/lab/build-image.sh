#!/usr/bin/env bash
# Builds (when missing) one lab image on the lab's Debian base (build-base.sh), from nothing but
# Debian's packages:
#   build-image.sh <repository> <Dockerfile> <input path>...
# The tag is a hash of the input paths and the base, so a changed input builds a new image and
# an unchanged one is reused; <repository>:latest points at the newest build, and the tags of
# older builds are dropped. Prints the image reference as its last line. build.sh (Asterisk)
# and build-radicale.sh (CalDAV) use it.
set -euo pipefail

repository=$1
dockerfile=$2
shift 2

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

BASE_IMAGE=${BASE_IMAGE:-presenced-lab-base:forky}
export BASE_IMAGE

if ! docker info >/dev/null 2>&1; then
	echo "lab: the Docker engine is not reachable (docker info failed)" >&2
	exit 1
fi

# Test packages start labs in parallel: one build at a time.
exec 9>/var/tmp/presenced-lab-build.lock
flock 9

bash testdata/lab/build-base.sh >&2

hash=$( (find "$@" -type f -print0 | sort -z | xargs -0 sha256sum; echo "$BASE_IMAGE") |
	sha256sum | cut -c1-12)
image="$repository:$hash"

if ! docker image inspect "$image" >/dev/null 2>&1; then
	echo "lab: building $image" >&2
	docker build -q --build-arg "BASE=$BASE_IMAGE" -f "$dockerfile" -t "$image" . >&2
fi
docker tag "$image" "$repository:latest"
# Older builds (other input hashes) are not used any more: drop their tags.
docker image ls --format '{{.Repository}}:{{.Tag}}' "$repository" |
	grep -v -e ":latest$" -e "^$image$" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$image"
