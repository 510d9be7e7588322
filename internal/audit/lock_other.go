//go:build !unix

package audit

import "os"

// Outside Unix there is no portable file lock here, so the spool cannot
// tell an abandoned spool file from a live one: OpenSpooled fails, and
// the caller uses a Log without a spool.
func tryLock(*os.File) (bool, error) {
	return false, ErrSpoolUnsupported
}
