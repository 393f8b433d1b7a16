#!/usr/bin/env bash
# Runs every Go fuzz target of the module briefly (FUZZ_TIME each, default 5000 executions), one
# target per `go test -fuzz` as Go requires. The default is a count, not a duration: with a
# duration, Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" failure
# when the time runs out while a worker is busy (golang/go#75804, fixed in Go 1.27), which a
# loaded machine hits now and then. A duration still works (FUZZ_TIME=5m) for long runs by hand. `go test ./...` already replays each target's seed corpus
# (testdata/fuzz/<Target>/ and the f.Add seeds); this explores a little beyond it. A failing
# input is written to the package's testdata/fuzz/<Target>/ by Go: commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_TIME=${FUZZ_TIME:-5000x}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' . | xargs -n1 dirname | sort -u |
while read -r dir; do
	for target in $(grep -hoE '^func Fuzz[A-Za-z0-9_]+' "$dir"/*_test.go | cut -d' ' -f2); do
		echo "fuzz: $dir $target ($FUZZ_TIME)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZ_TIME" "$dir" >"$log" 2>&1 || {
			grep -v '^20[0-9][0-9]/' "$log" | tail -40
			exit 1
		}
	done
done
