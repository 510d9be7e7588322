package main

import (
	"os"
	"runtime/debug"
)

// Garbage collector settings of the long-running commands (serve, load),
// unless the environment sets its own (GOGC, GOMEMLIMIT).
//
// Go's default collects whenever the heap has doubled since the last
// collection. Ward's live heap is small (tens of MiB) while every request
// allocates, so at the default it collected many times a second under
// load: 12% of ward serve's CPU in a search-heavy run. Letting the heap
// grow to five times its live size before collecting, within a soft limit
// of 1 GiB, costs a few hundred MiB of memory at most and gave 10-15% more
// searches a second (docs/PERFORMANCE.md, Garbage collection).
const (
	gcPercent   = 400
	gcSoftLimit = 1 << 30
)

// tuneGC applies the settings above where the environment does not.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(gcSoftLimit)
	}
}
