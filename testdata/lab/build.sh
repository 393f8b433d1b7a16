#!/usr/bin/env bash
# Builds (when missing) the images the lab needs, from nothing but Debian's packages:
#   presenced-lab-base:forky           Debian testing root with Asterisk 22 + redis-server (build-base.sh)
#   presenced-lab-asterisk:<hash>      the base + testdata/asterisk/conf + deploy/asterisk
# The tag is a hash of those inputs, so a changed config builds a new image and an unchanged one
# is reused; :latest points at the newest build (deploy/compose.yaml uses it).
# Prints the lab image reference as its last line (build-image.sh).
set -euo pipefail
exec bash "$(dirname "$0")/build-image.sh" presenced-lab-asterisk testdata/asterisk/Dockerfile testdata/asterisk deploy/asterisk
