package keys

import "time"

// SetClock makes f record times from now (tests only).
func SetClock(f *LocalFile, now func() time.Time) { f.now = now }
