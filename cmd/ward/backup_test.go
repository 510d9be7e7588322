package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupRestore is catalogue J1: a backup taken while writes go on
// restores, into a data directory holding only the key file, to a state
// `ward audit verify` accepts, holding every write answered before the
// backup began; a tampered or truncated backup is refused, and restoring
// a backup older than a saved checkpoint is a rollback refused unless
// accepted, which is recorded.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	before := map[string]bool{}
	for i := 0; i < 5; i++ {
		before[c.create(patient(family(t), "Before"))] = true
	}
	const canary = "Quillowbyrne"
	before[c.create(patient(canary, "Canary"))] = true
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		written atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if st, _ := c.do("POST", "/Patient", patient("Load", "During")); st == http.StatusCreated {
				written.Add(1)
			}
		}
	}()
	for written.Load() < 3 {
		time.Sleep(10 * time.Millisecond) // waits for writes to be under way; asserts nothing about time
	}
	file := filepath.Join(t.TempDir(), "ward.backup")
	code, out, stderr := ward(t, "backup", "--to", file, "--data", dir, "--json")
	stop.Store(true)
	wg.Wait()
	if code != 0 {
		t.Fatalf("backup under write load: exit %d %s", code, stderr)
	}
	var info backupInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.LedgerSize == 0 || info.ID == "" {
		t.Fatalf("backup result %s: %v", out, err)
	}
	for i := 0; i < 3; i++ {
		c.create(patient(family(t), "After"))
	}
	srv.stopOK()
	code, saved, stderr := ward(t, "audit", "checkpoint", "--data", dir)
	if code != 0 {
		t.Fatalf("checkpoint: %s", stderr)
	}
	savedFile := filepath.Join(t.TempDir(), "saved.cp")
	if err := os.WriteFile(savedFile, []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// D3 on the backup: neither the canary, in any of the forms a careless
	// copy could hold it, nor any JSON is in the file.
	for _, form := range []string{canary, strings.ToLower(canary), hex.EncodeToString([]byte(canary)),
		base64.StdEncoding.EncodeToString([]byte(canary))[:12], base64.StdEncoding.EncodeToString([]byte("x" + canary))[4:16],
		base64.StdEncoding.EncodeToString([]byte("xy" + canary))[4:16], "resourceType"} {
		if strings.Contains(string(raw), form) {
			t.Fatalf("the backup file holds %q", form)
		}
	}
	if code, out, stderr := ward(t, "backup", "verify", file, "--data", dir); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify: exit %d %s %s", code, out, stderr)
	}

	// Only a data directory with the key file and no database.
	newDir := func() string {
		d := t.TempDir()
		k, err := os.ReadFile(filepath.Join(dir, "keys.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "keys.json"), k, 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Tampered, truncated and extended backups are refused, and leave no
	// database behind.
	for name, bad := range map[string][]byte{
		"a flipped byte":  flipByte(raw, len(raw)/2),
		"truncated":       raw[:len(raw)-100],
		"cut at a chunk":  raw[:len(raw)/3],
		"a byte appended": append(append([]byte{}, raw...), 0),
	} {
		f := filepath.Join(t.TempDir(), "bad.backup")
		if err := os.WriteFile(f, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := ward(t, "backup", "verify", f, "--data", dir); code != 1 || !strings.Contains(stderr, "refused") {
			t.Errorf("verify of a backup with %s: exit %d %s", name, code, stderr)
		}
		d := newDir()
		if code, _, _ := ward(t, "restore", f, "--data", d); code != 1 {
			t.Errorf("restore of a backup with %s: exit %d, want 1", name, code)
		}
		if _, err := os.Stat(filepath.Join(d, "ward.db")); err == nil {
			t.Errorf("a refused restore (%s) left a database", name)
		}
	}

	restored := newDir()
	code, out, stderr = ward(t, "restore", file, "--data", restored, "--json")
	if code != 0 {
		t.Fatalf("restore: exit %d %s", code, stderr)
	}
	var res restoreResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.Contains(res.LedgerVerification, "ledger intact") {
		t.Fatalf("restore result %s: %v", out, err)
	}
	if code, out, stderr := ward(t, "audit", "verify", "--data", restored); code != 0 {
		t.Fatalf("audit verify of the restored data: exit %d %s %s", code, out, stderr)
	}
	if code, _, _ := ward(t, "restore", file, "--data", restored); code != 1 {
		t.Errorf("restoring over a database: exit %d, want 1", code)
	}
	srv2 := startServe(t, "--dev", "--data", restored)
	c2 := dial(t, restored)
	for id := range before {
		if st, _ := c2.do("GET", "/Patient/"+id, nil); st != http.StatusOK {
			t.Errorf("a patient written before the backup: %d after the restore", st)
		}
	}
	srv2.stopOK()

	// The backup is older than the checkpoint saved after it: a rollback.
	older := newDir()
	if code, _, stderr := ward(t, "restore", file, "--data", older, "--checkpoint", savedFile); code != 1 || !strings.Contains(stderr, "rolls the ledger back") {
		t.Errorf("a rollback without --accept-rollback: exit %d %s", code, stderr)
	}
	if code, _, stderr := ward(t, "restore", file, "--data", older, "--checkpoint", savedFile, "--accept-rollback"); code != 0 {
		t.Fatalf("an accepted rollback: exit %d %s", code, stderr)
	}
	es := ledgerOf(t, older)
	last := es[len(es)-1]
	if last.Action != "restore" || !strings.Contains(last.Detail, "rollback-accepted") || !strings.Contains(last.Detail, info.ID) {
		t.Errorf("the accepted rollback's entry: %+v", last)
	}
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x40
	return c
}
