package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

var fixedTime = time.Unix(1700000000, 0).UTC()

func newSigner(t testing.TB) *ledger.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewSigner("ward.test/ledger", key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verify runs the offline verifier over everything the store holds.
func verify(ctx context.Context, st store.Store, signer *ledger.Signer, trusted ...[]byte) error {
	cps, err := StoredCheckpoints(ctx, st)
	if err != nil {
		return err
	}
	var tr []ledger.SignedCheckpoint
	for _, t := range trusted {
		tr = append(tr, t)
	}
	_, err = ledger.Verify(ctx, Source(st), cps, note.VerifierList(signer.Verifier()), ledger.VerifyOptions{Origin: signer.Name(), Trusted: tr})
	return err
}

// Checkpoints of the stored ledger open with the log's key, match the
// stored tree, and the offline verifier accepts the whole log; each kind of
// tampering with the stored rows is then detected (E3, on the store).
func TestCheckpointsAndTampering(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ward.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	signer := newSigner(t)
	l := New(st, Config{})
	defer l.Close()
	var saved []byte
	for i := 0; i < 60; i++ {
		if err := l.Append(ctx, entryRec(t, fmt.Sprintf(`entry-%02d`, i))); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			size, note, err := Checkpoint(ctx, st, signer)
			if err != nil || size != int64(i+1) {
				t.Fatalf("checkpoint at %d: size %d, %v", i+1, size, err)
			}
			c, err := ledger.OpenCheckpoint(note, signer.Name(), note2verifiers(signer))
			if err != nil || c.Size != size {
				t.Fatalf("open checkpoint: %+v, %v", c, err)
			}
			if i == 29 {
				saved = note // an auditor keeps this one
			}
		}
	}
	// Checkpointing an unchanged log stores nothing new.
	if size, _, err := Checkpoint(ctx, st, signer); err != nil || size != 60 {
		t.Fatalf("repeat checkpoint: %d, %v", size, err)
	}
	if err := verify(ctx, st, signer, saved); err != nil {
		t.Fatalf("intact log rejected: %v", err)
	}

	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var hash5 []byte
	if err := raw.QueryRow(`SELECT hash FROM ledger_hashes WHERE idx = 5`).Scan(&hash5); err != nil {
		t.Fatal(err)
	}
	mutations := []struct {
		name       string
		do, undo   string
		args, back []any
	}{
		{"edit an entry", `UPDATE ledger_entries SET entry = ? WHERE idx = 17`, `UPDATE ledger_entries SET entry = ? WHERE idx = 17`, []any{entryRec(t, "entry-xx").Entry}, []any{entryRec(t, "entry-17").Entry}},
		{"delete an entry", `DELETE FROM ledger_entries WHERE idx = 40`, `INSERT INTO ledger_entries (idx, entry, patient, at) VALUES (40, ?, 'p', 1700000000000000)`, nil, []any{entryRec(t, "entry-40").Entry}},
		{"zero a stored hash", `UPDATE ledger_hashes SET hash = ? WHERE idx = 5`, `UPDATE ledger_hashes SET hash = ? WHERE idx = 5`, []any{make([]byte, 32)}, []any{hash5}},
		{"truncate below a checkpoint", `DELETE FROM ledger_entries WHERE idx >= 55`, ``, nil, nil},
	}
	detected, applied := 0, 0
	for _, m := range mutations {
		applied++
		// Work on a copy of the state: re-open a fresh database per case
		// would be slower; instead apply, verify, and repair when possible.
		if _, err := raw.Exec(m.do, m.args...); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		err := verify(ctx, st, signer, saved)
		var ve *ledger.VerifyError
		if err == nil {
			t.Errorf("%s: not detected", m.name)
		} else {
			detected++
			if errors.As(err, &ve) {
				t.Logf("%s: detected at index %d: %s", m.name, ve.Index, ve.Reason)
			}
		}
		if m.undo == "" {
			continue // the last case: nothing to repair
		}
		if _, err := raw.Exec(m.undo, m.back...); err != nil {
			t.Fatalf("%s: undo: %v", m.name, err)
		}
		if err := verify(ctx, st, signer, saved); err != nil {
			t.Fatalf("%s: repaired log still rejected: %v", m.name, err)
		}
	}
	t.Logf("ledger mutations detected: %d/%d", detected, applied)
}

// entryRec is a valid encoded entry whose detail is s.
func entryRec(t *testing.T, s string) Record {
	t.Helper()
	e := ledger.Entry{Time: fixedTime, Action: "read", Outcome: "success", Detail: s}
	enc, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return Record{Entry: enc, Patient: "p", Time: fixedTime}
}

func note2verifiers(s *ledger.Signer) note.Verifiers { return note.VerifierList(s.Verifier()) }
