package main

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// servedLedger is a data directory whose server was stopped cleanly:
// its ledger ends with a signed checkpoint, and an earlier checkpoint
// and a published one exist.
type servedLedger struct {
	dir, pub string
	early    int64 // size of a checkpoint signed mid-way
	size     int64 // entries, all under the final checkpoint
	patient  string
}

// serveLedger serves a data directory with a publish directory, writes
// through it, and stops it once a checkpoint past the early one is
// published.
func serveLedger(t *testing.T) servedLedger {
	t.Helper()
	l := servedLedger{dir: filepath.Join(t.TempDir(), "data"), pub: filepath.Join(t.TempDir(), "published")}
	srv := startServe(t, "--dev", "--data", l.dir, "--ledger-publish-dir", l.pub)
	c := dial(t, l.dir)
	l.patient = c.create(patient(family(t), "Early"))
	code, early, stderr := ward(t, "audit", "checkpoint", "--data", l.dir)
	if code != 0 {
		t.Fatalf("audit checkpoint: %s", stderr)
	}
	l.early, _ = strconv.ParseInt(strings.SplitN(early, "\n", 3)[1], 10, 64)
	for range 3 {
		c.create(patient(family(t), "Later"))
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if size, _, err := audit.LatestPublished(l.pub); err == nil && size > l.early {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing past size %d published within 20s; log:\n%s", l.early, srv.stderr.String())
		}
	}
	srv.stopOK()
	l.size = l.state(t).size
	return l
}

// clone copies the data directory (the publish directory is shared), so
// that each case tampers with its own copy.
func (l servedLedger) clone(t *testing.T) servedLedger {
	t.Helper()
	c := l
	c.dir = filepath.Join(t.TempDir(), "data")
	err := filepath.WalkDir(l.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(c.dir, rel), info.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(c.dir, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// raw opens the SQLite database as a database administrator would.
func (l servedLedger) raw(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.dir, "ward.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sqlExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

type ledgerState struct {
	size        int64
	checkpoints int
}

func (l servedLedger) state(t *testing.T) ledgerState {
	t.Helper()
	db := l.raw(t)
	var s ledgerState
	if err := db.QueryRow(`SELECT size FROM ledger_head`).Scan(&s.size); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM ledger_checkpoints`).Scan(&s.checkpoints); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return s
}

// editEntry changes entry i's outcome in place, leaving its hashes.
func editEntry(t *testing.T, db *sql.DB, i int64) {
	t.Helper()
	var entry []byte
	if err := db.QueryRow(`SELECT entry FROM ledger_entries WHERE idx = ?`, i).Scan(&entry); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(entry), `"outcome":"success"`, `"outcome":"failure"`, 1)
	if edited == string(entry) {
		t.Fatalf("entry %d has no success outcome to edit", i)
	}
	sqlExec(t, db, `UPDATE ledger_entries SET entry = ? WHERE idx = ?`, []byte(edited), i)
}

// rehash recomputes every stored hash from the entries, as an attacker
// covering an edit does.
func rehash(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT idx, entry FROM ledger_entries ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for rows.Next() {
		var i int64
		var entry []byte
		if err := rows.Scan(&i, &entry); err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashesForRecordHash(i, tlog.RecordHash(entry), r)
		if err != nil {
			t.Fatal(err)
		}
		for k, h := range hs {
			hashes[tlog.StoredHashIndex(0, i)+int64(k)] = h
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for x, h := range hashes {
		sqlExec(t, db, `UPDATE ledger_hashes SET hash = ? WHERE idx = ?`, h[:], x)
	}
}

// truncate removes the entries from index n on, as a rollback does.
func truncate(t *testing.T, db *sql.DB, n int64) {
	t.Helper()
	sqlExec(t, db, `DELETE FROM ledger_entries WHERE idx >= ?`, n)
	sqlExec(t, db, `DELETE FROM ledger_patients WHERE idx >= ?`, n)
	sqlExec(t, db, `DELETE FROM ledger_hashes WHERE idx >= ?`, tlog.StoredHashIndex(0, n))
	sqlExec(t, db, `UPDATE ledger_head SET size = ?`, n)
}

// serveRefused runs ward serve and expects it to exit before it is ready.
func serveRefused(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve", "--addr", freeAddr(t)}, args...), &stdout, &stderr) }()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case code := <-done:
			return code, stderr.String()
		case <-deadline:
			t.Fatalf("ward serve neither refused nor started within 20s; log:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if strings.Contains(stdout.String(), "Ward is running") {
			cancel()
			<-done
			t.Fatalf("ward serve started on a tampered ledger; log:\n%s", stderr.String())
		}
	}
}

// E7: a ledger edited, truncated or rolled back while Ward was stopped
// makes ward serve refuse to start, with exit code 3 and a message that
// says what is wrong, where, and against which checkpoint; the refused
// start writes nothing. With --read-only-investigation it starts, refuses
// writes, signs nothing, and the start is recorded.
func TestServeRefusesTamperedLedger(t *testing.T) {
	golden := serveLedger(t)
	for _, tt := range []struct {
		name   string
		tamper func(t *testing.T, l servedLedger, db *sql.DB)
		args   []string // besides --dev --data
		want   func(l servedLedger) []string
	}{
		{"an entry after the last checkpoint edited", func(t *testing.T, l servedLedger, db *sql.DB) {
			if code, _, stderr := ward(t, "client", "create", "--data", l.dir, "--name", "unsigned", "--scope", "system/Patient.rs"); code != 0 {
				t.Fatalf("client create: %s", stderr)
			}
			editEntry(t, db, l.size) // the client's creation, not yet signed
		}, nil, func(l servedLedger) []string {
			return []string{fmt.Sprintf("first bad index %d: stored leaf hash does not match the entry", l.size)}
		}},
		{"an entry edited and its hashes recomputed", func(t *testing.T, l servedLedger, db *sql.DB) {
			editEntry(t, db, 2)
			rehash(t, db)
		}, nil, func(l servedLedger) []string {
			return []string{fmt.Sprintf("the stored tree hashes do not match the latest stored checkpoint (size %d)", l.size)}
		}},
		{"truncated", func(t *testing.T, l servedLedger, db *sql.DB) {
			truncate(t, db, l.size-2)
		}, nil, func(l servedLedger) []string {
			return []string{fmt.Sprintf("first bad index %d: log has %d entries but the latest stored checkpoint (size %d) commits to %d",
				l.size-2, l.size-2, l.size, l.size)}
		}},
		{"rolled back with its checkpoints, below a published checkpoint", func(t *testing.T, l servedLedger, db *sql.DB) {
			truncate(t, db, l.early)
			sqlExec(t, db, `DELETE FROM ledger_checkpoints WHERE size > ?`, l.early)
			if code, _, stderr := ward(t, "audit", "verify", "--data", l.dir); code != 0 {
				t.Fatalf("the rolled back ledger should verify on its own: %s", stderr)
			}
		}, []string{"--ledger-publish-dir", golden.pub}, func(l servedLedger) []string {
			size, _, _ := audit.LatestPublished(l.pub)
			return []string{fmt.Sprintf("first bad index %d: log has %d entries but trusted checkpoint 0 (size %d)", l.early, l.early, size),
				fmt.Sprintf("(trusted checkpoint 0 is %s)", filepath.Join(l.pub, fmt.Sprintf("%d.checkpoint", size)))}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := golden.clone(t)
			db := l.raw(t)
			tt.tamper(t, l, db)
			before := l.state(t)
			args := append([]string{"--dev", "--data", l.dir}, tt.args...)
			code, stderr := serveRefused(t, args...)
			if code != exitLedger {
				t.Fatalf("exit %d, want %d; log:\n%s", code, exitLedger, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			t.Logf("exit %d: %s", code, lines[len(lines)-1])
			for _, want := range append(tt.want(l), "refusing to serve or to sign checkpoints", "security event: the audit ledger failed its start check") {
				if !strings.Contains(stderr, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, stderr)
				}
			}
			if after := l.state(t); after != before {
				t.Errorf("the refused start wrote: %+v, then %+v", before, after)
			}

			// The same ledger, started for an investigation.
			srv := startServe(t, append(args, "--read-only-investigation")...)
			c := dial(t, l.dir)
			status, body := c.do(http.MethodPost, "/Patient", patient(family(t), "Refused"))
			if status != http.StatusForbidden || !strings.Contains(issues(body), "read-only for an investigation") {
				t.Errorf("a create on a read-only server: status %d %s", status, issues(body))
			}
			c.read("Patient", l.patient)
			srv.stopOK()
			log := srv.stderr.String()
			for _, want := range []string{"READ-ONLY INVESTIGATION", "security event: the audit ledger failed its start check", "no final ledger checkpoint: signing is halted"} {
				if !strings.Contains(log, want) {
					t.Errorf("the read-only server's log lacks %q", want)
				}
			}
			after := l.state(t)
			if after.checkpoints != before.checkpoints {
				t.Errorf("the read-only server signed %d checkpoints", after.checkpoints-before.checkpoints)
			}
			recorded := false
			for _, e := range ledgerOf(t, l.dir)[before.size:] {
				if e.Action == "server-start-read-only" && strings.HasPrefix(e.Detail, "ledger-check=failed(") {
					recorded = true
				}
				if e.Action == "create" && e.Outcome == "success" {
					t.Errorf("a read-only server recorded a successful create")
				}
			}
			if !recorded {
				t.Errorf("the read-only start is not in the ledger")
			}
		})
	}
}

// waitLog polls a server's log until it holds want.
func waitLog(t *testing.T, srv *server, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(srv.stderr.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within 20s:\n%s", want, srv.stderr.String())
		}
	}
}

// E7: an entry edited below the last checkpoint, without its hashes, is
// beyond the start check; the background check finds it while the server
// runs, signing stops, and the finding is logged and recorded. Requests
// are still served.
func TestBackgroundCheckFindsEdit(t *testing.T) {
	l := serveLedger(t).clone(t)
	srv := startServe(t, "--dev", "--data", l.dir, "--ledger-verify-pace", "1000000", "--ledger-verify-pause", "10ms")
	waitLog(t, srv, "background check of the audit ledger passed")
	db := l.raw(t)
	editEntry(t, db, 2)
	waitLog(t, srv, "security event: the audit ledger disagrees with its signed checkpoints")
	if !strings.Contains(srv.stderr.String(), `"found_by":"background-check"`) ||
		!strings.Contains(srv.stderr.String(), "index 2: stored leaf hash does not match the entry") {
		t.Errorf("the finding does not say who found what where:\n%s", srv.stderr.String())
	}
	// Signing stopped before the finding was logged: nothing more is signed.
	signed := l.state(t).checkpoints
	c := dial(t, l.dir)
	c.create(patient(family(t), "After"))
	srv.stopOK()
	if after := l.state(t).checkpoints; after != signed {
		t.Errorf("%d checkpoints signed after the finding", after-signed)
	}
	if !strings.Contains(srv.stderr.String(), "no final ledger checkpoint: signing is halted") {
		t.Errorf("the stop did not say why it signed no final checkpoint")
	}
	found := false
	for _, e := range ledgerOf(t, l.dir)[l.size:] {
		if e.Action == "ledger-check" && e.Outcome == "failure" && strings.Contains(e.Detail, "found-by=background-check first bad index 2") {
			found = true
		}
	}
	if !found {
		t.Errorf("the finding is not recorded in the ledger")
	}
}

// --read-only-investigation serves read-only also when the ledger passes
// its check: the audit entries of its requests stay unsigned.
func TestReadOnlyInvestigationIntactLedger(t *testing.T) {
	l := serveLedger(t).clone(t)
	before := l.state(t)
	srv := startServe(t, "--dev", "--data", l.dir, "--read-only-investigation")
	c := dial(t, l.dir)
	if status, body := c.do(http.MethodPut, "/Patient/"+l.patient, patient(family(t), "Changed")); status != http.StatusForbidden {
		t.Errorf("an update on a read-only server: status %d %s", status, issues(body))
	}
	c.read("Patient", l.patient)
	srv.stopOK()
	if !strings.Contains(srv.stderr.String(), `"ledger_verified":true`) {
		t.Errorf("the read-only start does not say the ledger passed its check")
	}
	if after := l.state(t); after.size <= before.size || after.checkpoints != before.checkpoints {
		t.Errorf("the read-only server recorded %d entries and signed %d checkpoints, want some and none",
			after.size-before.size, after.checkpoints-before.checkpoints)
	}
	es := ledgerOf(t, l.dir)[l.size:]
	if es[0].Action != "server-start-read-only" || !strings.HasPrefix(es[0].Detail, "ledger-check=passed ") {
		t.Errorf("first entry of the read-only start: %s %q", es[0].Action, es[0].Detail)
	}
}

// E7 on PostgreSQL: a ledger truncated while Ward was stopped makes ward
// serve refuse with exit code 3; started read-only, it refuses writes.
func TestServePostgresRefusesTamperedLedger(t *testing.T) {
	sc := storetest.FreshSchema(t, "ward_cmd_ledgercheck_")
	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir, "--db", sc.URL)
	c := dial(t, dir)
	id := c.create(patient(family(t), "Pg"))
	c.create(patient(family(t), "Pg"))
	srv.stopOK()
	ctx := t.Context()
	var size int64
	if err := sc.Admin.QueryRowContext(ctx, `SELECT size FROM `+sc.Name+`.ledger_head`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	cut := size - 2
	for _, q := range []string{
		`DELETE FROM %s.ledger_entries WHERE idx >= $1`,
		`DELETE FROM %s.ledger_patients WHERE idx >= $1`,
		`UPDATE %s.ledger_head SET size = $1`,
	} {
		if _, err := sc.Admin.ExecContext(ctx, fmt.Sprintf(q, sc.Name), cut); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Admin.ExecContext(ctx, `DELETE FROM `+sc.Name+`.ledger_hashes WHERE idx >= $1`, tlog.StoredHashIndex(0, cut)); err != nil {
		t.Fatal(err)
	}
	code, stderr := serveRefused(t, "--dev", "--data", dir, "--db", sc.URL)
	if code != exitLedger || !strings.Contains(stderr, fmt.Sprintf("first bad index %d: log has %d entries but the latest stored checkpoint (size %d)", cut, cut, size)) {
		t.Fatalf("exit %d, want %d and the truncation named; log:\n%s", code, exitLedger, stderr)
	}
	srv = startServe(t, "--dev", "--data", dir, "--db", sc.URL, "--read-only-investigation")
	c = dial(t, dir)
	if status, _ := c.do(http.MethodDelete, "/Patient/"+id, nil); status != http.StatusForbidden {
		t.Errorf("a delete on a read-only server: status %d", status)
	}
	c.read("Patient", id)
	srv.stopOK()
}
