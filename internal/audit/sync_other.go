//go:build !linux

package audit

import "os"

// datasync writes f's data and metadata.
func datasync(f *os.File) error { return f.Sync() }
