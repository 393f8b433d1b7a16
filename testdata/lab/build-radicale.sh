#!/usr/bin/env bash
# Builds (when missing) the lab's CalDAV server image from Debian's packages:
#   presenced-lab-radicale:<hash>   the lab base (build-base.sh) + Debian's radicale + testdata/radicale
# The tag is a hash of those inputs, so a changed config builds a new image and an unchanged one
# is reused; :latest points at the newest build. Prints the image reference as its last line
# (build-image.sh).
set -euo pipefail
exec bash "$(dirname "$0")/build-image.sh" presenced-lab-radicale testdata/radicale/Dockerfile testdata/radicale
