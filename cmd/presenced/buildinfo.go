package main

import (
	"runtime"
	"runtime/debug"
)

// commit is the VCS revision presenced was built from, set at build time with
// -ldflags "-X main.commit=..." (make bin, the Dockerfile, deploy/deb/build.sh); empty means
// the revision the Go toolchain recorded in the binary, if any.
var commit = ""

// buildInfo says which presenced runs: the version (main.version), the VCS revision (with
// "-dirty" for a modified tree) and the Go version it was built with.
type buildInfo struct {
	Version, Revision, GoVersion string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Revision: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok && b.Revision == "" {
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && b.Revision != "" {
			b.Revision += "-dirty"
		}
	}
	if b.Revision == "" {
		b.Revision = "unknown"
	}
	return b
}
