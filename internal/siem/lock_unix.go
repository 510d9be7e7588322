//go:build unix

package siem

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on the buffer directory's lock
// file, so that a second process does not write the same segments.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- buffer files Ward names itself in the configured SIEM directory
	if err != nil {
		return nil, fmt.Errorf("siem: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("siem: %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("siem: locking %s: %w", dir, err)
	}
	return f, nil
}
