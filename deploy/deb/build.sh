#!/usr/bin/env bash
# Builds the presenced .deb with nfpm (github.com/goreleaser/nfpm, from the Go module proxy; no
# registry of packages needed) into dist/ and prints its path as the last line:
#   bash deploy/deb/build.sh            # dist/presenced_<version>_<arch>.deb
# The package holds presenced (and presencectl, when cmd/presencectl exists), stripped; the
# systemd unit; the example configuration as /etc/presenced/presenced.yaml (0640 root:presenced);
# the dialplan, AMI user, alert rules and dashboard under /usr/share/presenced; the man pages
# (deploy/deb/man, and presencectl(1) generated from presencectl --help); the README and
# runbook; and the scripts making the system user presenced.
# GOARCH may be set, and VERSION to a release's version (it replaces the source's); the Debian
# version is made of it (see below).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

NFPM_VERSION=v2.48.0
arch=${GOARCH:-$(go env GOARCH)}
case "$arch" in
amd64 | arm64 | riscv64 | ppc64le | s390x) deb_arch=$arch ;;
386) deb_arch=i386 ;;
arm) deb_arch=armhf ;;
*)
	echo "deb: no Debian architecture for GOARCH=$arch" >&2
	exit 1
	;;
esac

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then commit="$commit-dirty"; fi
ldflags="-s -w -X main.commit=$commit"
# VERSION, a release's version, replaces the one in the source; otherwise presenced says its own.
if [[ -n "${VERSION:-}" ]]; then
	ldflags="$ldflags -X main.version=$VERSION"
else
	VERSION=$(go run -ldflags "$ldflags" ./cmd/presenced -version | awk '{print $2}')
fi
# The Debian version: the semantic version with ~ for - (1.2.0-rc1 sorts before 1.2.0), 0.0.0~
# before one that does not start with a digit, and +git<date>.<commit> unless HEAD is its tag.
deb_version=${VERSION//-/\~}
[[ "$deb_version" =~ ^[0-9] ]] || deb_version="0.0.0~$deb_version"
if [[ "$(git describe --tags --exact-match 2>/dev/null)" != "v$VERSION" ]]; then
	deb_version="$deb_version+git$(date -u +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022

for cmd in presenced presencectl; do
	[[ -d "cmd/$cmd" ]] || continue
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$stage/usr/bin/$cmd" "./cmd/$cmd"
done
# presencectl(1) is made from the command's own --help (deploy/deb/mangen), with a build for
# this machine when the package is for another architecture.
if [[ -d cmd/presencectl ]]; then
	ctl="$stage/usr/bin/presencectl"
	if [[ "$arch" != "$(go env GOHOSTARCH)" ]]; then
		ctl="$stage/host-presencectl"
		go build -o "$ctl" ./cmd/presencectl
	fi
	mkdir -p "$stage/usr/share/man/man1"
	go run ./deploy/deb/mangen -bin "$ctl" -section 1 -source "presenced $VERSION" -see-also "presenced(8)" |
		gzip -9n >"$stage/usr/share/man/man1/presencectl.1.gz"
	rm -f "$stage/host-presencectl"
fi
for page in deploy/deb/man/*.[1-8]; do
	section=${page##*.}
	mkdir -p "$stage/usr/share/man/man$section"
	gzip -9nc "$page" >"$stage/usr/share/man/man$section/$(basename "$page").gz"
done
cat >"$stage/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: presenced
Source: https://github.com/presenced/presenced

Files: *
Copyright: the presenced authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

mkdir -p dist
rm -f dist/presenced_*.deb
# nfpm expands variables in some fields only: fill in the configuration here.
sed -e "s|\${STAGE}|$stage|g" -e "s|\${DEB_ARCH}|$deb_arch|g" -e "s|\${DEB_VERSION}|$deb_version|g" \
	deploy/deb/nfpm.yaml >"$stage/nfpm.yaml"
go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" pkg --packager deb \
	--config "$stage/nfpm.yaml" --target dist/ >&2
ls dist/presenced_*.deb
