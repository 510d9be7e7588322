//go:build !unix

package keys

import (
	"errors"
	"io/fs"
)

// Outside Unix there is no portable file lock here, so rotation refuses to run rather
// than risk two processes rewriting the key file at once.
func lockFile(path string) (unlock func(), err error) {
	return nil, errors.New("keys: key file locking is supported on unix only")
}

// checkPrivate cannot check Unix permission bits on this platform; the
// operator protects the file with the platform's access controls.
func checkPrivate(path string, st fs.FileInfo) error { return nil }
