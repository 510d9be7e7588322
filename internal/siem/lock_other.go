//go:build !unix

package siem

import "os"

// lockDir: outside Unix there is no portable file lock here; the buffer
// relies on one process per data directory.
func lockDir(string) (*os.File, error) { return nil, nil }
