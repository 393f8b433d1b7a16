#!/usr/bin/env bash
# Builds (when missing) the images the lab needs, from nothing but Debian's packages:
#   presenced-lab-base:forky           Debian testing root with Asterisk 22 + redis-server (build-base.sh)
#   presenced-lab-asterisk:<hash>      the base + testdata/asterisk/conf + deploy/asterisk
# The tag is a hash of those inputs, so a changed config builds a new image and an unchanged one
# is reused; :latest points at the newest build (deploy/compose.yaml uses it).
# Prints the lab image reference as its last line.
set -euo pipefail

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

hash=$( (cd "$top" && find testdata/asterisk deploy/asterisk -type f -print0 | sort -z |
	xargs -0 sha256sum; echo "$BASE_IMAGE") | sha256sum | cut -c1-12)
image="presenced-lab-asterisk:$hash"

if ! docker image inspect "$image" >/dev/null 2>&1; then
	echo "lab: building $image" >&2
	docker build -q --build-arg "BASE=$BASE_IMAGE" -f testdata/asterisk/Dockerfile -t "$image" . >&2
fi
docker tag "$image" presenced-lab-asterisk:latest
# Older builds (other config hashes) are not used any more: drop their tags.
docker image ls --format '{{.Repository}}:{{.Tag}}' presenced-lab-asterisk |
	grep -v -e ":latest$" -e "^$image$" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$image"
