// Package fsutil holds the file system steps Ward's durable files share.
//
// What it guarantees: SyncDir makes a directory's entries (files created,
// renamed or removed in it) durable, as a file's Sync does for its data.
package fsutil

import "os"

// SyncDir syncs the directory dir, so that names created, renamed or
// removed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- a directory Ward itself writes in, to sync it
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
