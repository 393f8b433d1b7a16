#!/usr/bin/env bash
# Builds (when missing) the lab's CalDAV server image from Debian's packages:
#   presenced-lab-radicale:<hash>   the lab base (build-base.sh) + Debian's radicale + testdata/radicale
# The tag is a hash of those inputs, so a changed config builds a new image and an unchanged one
# is reused; :latest points at the newest build. Prints the image reference as its last line.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

BASE_IMAGE=${BASE_IMAGE:-presenced-lab-base:forky}
export BASE_IMAGE

if ! docker info >/dev/null 2>&1; then
	echo "lab: the Docker engine is not reachable (docker info failed)" >&2
	exit 1
fi

# Test packages start labs in parallel: one build at a time (the lock build.sh takes too).
exec 9>/var/tmp/presenced-lab-build.lock
flock 9

bash testdata/lab/build-base.sh >&2

hash=$( (find testdata/radicale -type f -print0 | sort -z | xargs -0 sha256sum; echo "$BASE_IMAGE") |
	sha256sum | cut -c1-12)
image="presenced-lab-radicale:$hash"

if ! docker image inspect "$image" >/dev/null 2>&1; then
	echo "lab: building $image" >&2
	docker build -q --build-arg "BASE=$BASE_IMAGE" -f testdata/radicale/Dockerfile -t "$image" . >&2
fi
docker tag "$image" presenced-lab-radicale:latest
docker image ls --format '{{.Repository}}:{{.Tag}}' presenced-lab-radicale |
	grep -v -e ":latest$" -e "^$image$" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$image"
