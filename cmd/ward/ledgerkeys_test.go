package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/compliance"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// ledgerGet reads one of the auditor's /ledger endpoints.
func (c *fhirClient) ledgerGet(path string) (int, []byte) {
	c.t.Helper()
	base := strings.TrimSuffix(c.creds.TokenURL, "/oauth2/token")
	req, err := http.NewRequestWithContext(c.t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// keyChain fetches GET /ledger/keys and follows it from first ("" takes
// the first key the document names).
func (c *fhirClient) keyChain(first string) (*ledger.KeyChain, []byte) {
	c.t.Helper()
	code, doc := c.ledgerGet("/ledger/keys")
	if code != http.StatusOK {
		c.t.Fatalf("GET /ledger/keys: %d %s", code, doc)
	}
	chain, err := ledger.ParseKeyChain(doc, first)
	if err != nil {
		c.t.Fatalf("the served key chain does not verify: %v\n%s", err, doc)
	}
	return chain, doc
}

// checkpointAtLeast waits (bounded) until the served checkpoint covers
// size entries, and returns it.
func (c *fhirClient) checkpointAtLeast(chain *ledger.KeyChain, size int64) (ledger.Checkpoint, []byte) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, msg := c.ledgerGet("/ledger/checkpoint")
		if code == http.StatusOK {
			cp, err := chain.OpenCheckpoint(msg)
			if err != nil {
				c.t.Fatalf("the served checkpoint does not verify under the key chain: %v\n%s", err, msg)
			}
			if cp.Size >= size {
				return cp, msg
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no checkpoint of %d entries or more within 30s (last: %d %s)", size, code, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLedgerKeyRotation: ward keys rotate --kind ledger while a server
// serves, on SQLite and on PostgreSQL. The server picks the new key up
// without a restart: the checkpoints from the transition's size on are
// signed by the new key only, those before keep verifying under the old
// one, GET /ledger/keys serves the chain an outside verifier follows,
// ward audit verify passes across the transition (from the key file, and
// from the first key plus the served chain), and not without the chain.
// A restart after the rotation serves and verifies. A rotation that dies
// after recording its entry holds checkpoints back until a rerun
// completes it, with the entry recorded once.
func TestLedgerKeyRotation(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testLedgerKeyRotation(t, "") })
	t.Run("postgres", func(t *testing.T) {
		testLedgerKeyRotation(t, storetest.FreshSchema(t, "ward_ledgerkey_test_").URL)
	})
}

// backendArgs returns the arguments of a dev server on the data
// directory dir and, when dbURL is set, that PostgreSQL database, and
// those of a command on the same storage.
func backendArgs(dir, dbURL string) (serve, cli []string) {
	serve, cli = []string{"--dev", "--data", dir}, []string{"--data", dir}
	if dbURL != "" {
		serve, cli = append(serve, "--db", dbURL), append(cli, "--db", dbURL)
	}
	return serve, cli
}

func testLedgerKeyRotation(t *testing.T, dbURL string) {
	dir := t.TempDir()
	args, cli := backendArgs(dir, dbURL)
	srv := startServe(t, args...)
	c := dial(t, dir)
	fam := family(t)
	for range 3 {
		c.create(patient(fam, "Before"))
	}
	chain0, _ := c.keyChain("")
	first := chain0.FirstKey()
	if first == "" || len(chain0.Transitions()) != 0 {
		t.Fatalf("before any rotation the chain is the first key alone: %q, %d transitions", first, len(chain0.Transitions()))
	}
	_, oldMsg := c.checkpointAtLeast(chain0, 1)
	oldFile := filepath.Join(t.TempDir(), "old.checkpoint")
	if err := os.WriteFile(oldFile, oldMsg, 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := ward(t, append([]string{"keys", "rotate", "--kind", "ledger"}, cli...)...)
	if code != 0 || !strings.Contains(stdout, "ledger-2") {
		t.Fatalf("keys rotate --kind ledger: exit %d: %s %s", code, stdout, stderr)
	}
	for range 3 {
		c.create(patient(fam, "After")) // the server keeps writing
	}
	chain1, doc := c.keyChain(first)
	if len(chain1.Transitions()) != 1 {
		t.Fatalf("after the rotation the served chain has %d transitions", len(chain1.Transitions()))
	}
	tr := chain1.Transitions()[0]
	if chain1.Current().KeyHash() == chain0.Current().KeyHash() {
		t.Fatal("the chain's current key did not change")
	}
	// The server signs from the transition's size on with the new key,
	// without a restart.
	cp, newMsg := c.checkpointAtLeast(chain1, tr.From)
	if _, err := ledger.OpenCheckpoint(newMsg, chain1.Origin(), note.VerifierList(chain0.Current())); err == nil {
		t.Errorf("a checkpoint of size %d (transition at %d) verifies under the old key", cp.Size, tr.From)
	}
	if _, err := chain1.OpenCheckpoint(oldMsg); err != nil {
		t.Errorf("the checkpoint signed before the rotation no longer verifies: %v", err)
	}
	chainFile := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(chainFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	verify := func(extra ...string) (int, string) {
		t.Helper()
		code, stdout, stderr := ward(t, append(append([]string{"audit", "verify"}, cli...), extra...)...)
		return code, stdout + stderr
	}
	if code, out := verify(); code != 0 || !strings.Contains(out, "1 key transition") {
		t.Errorf("audit verify across the transition (key file): exit %d: %s", code, out)
	}
	if code, out := verify("--vkey", first, "--key-chain", chainFile, "--checkpoint", oldFile); code != 0 {
		t.Errorf("audit verify from the first key and the served chain: exit %d: %s", code, out)
	}
	if code, out := verify("--vkey", first); code == 0 || !strings.Contains(out, "NOT intact") {
		t.Errorf("audit verify with the first key alone accepts the new key's checkpoints: exit %d: %s", code, out)
	}
	if code, out := verify("--vkey", chain1.VerifierKeyAt(tr.From), "--key-chain", chainFile); code == 0 {
		t.Errorf("audit verify accepts a chain that starts from another key than the one trusted: %s", out)
	}
	for _, k := range status(t, dir).Keys {
		if k.Kind == "ledger" && (k.ID != "ledger-2" || k.Generations != 2 || k.AgeDays > 1) {
			t.Errorf("keys status after the rotation: %+v", k)
		}
	}
	if _, stdout, _ := ward(t, append([]string{"keys", "status"}, cli...)...); !strings.Contains(stdout, fmt.Sprintf("signs from tree size %d", tr.From)) {
		t.Errorf("keys status does not say from which size the ledger key signs:\n%s", stdout)
	}
	srv.stopOK()

	// A restart after the rotation: the start check follows the chain.
	srv = startServe(t, args...)
	c = dial(t, dir)
	c.create(patient(fam, "Restarted"))

	// A rotation that dies once its entry is recorded: no checkpoint is
	// signed over the entry until a rerun completes it.
	ctx := context.Background()
	st := &storage{data: dir, db: dbURL}
	kf, err := st.openKeys()
	if err != nil {
		t.Fatal(err)
	}
	db, err := st.openStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lk := ledgerKeys{origin: chain1.Origin(), kf: kf}
	g, err := kf.BeginLedgerRotation(ctx, keys.SigningKey{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := ledger.NewSigner(lk.origin, kf.Signer(keys.KindLedger, g.ID))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := lk.chain()
	if err != nil {
		t.Fatal(err)
	}
	index, err := recordTransition(ctx, db, chain, next.VerifierKey(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// ... the process died here.
	if _, stdout, _ := ward(t, append([]string{"keys", "status"}, cli...)...); !strings.Contains(stdout, "pending") {
		t.Errorf("keys status does not show the pending transition:\n%s", stdout)
	}
	c.create(patient(fam, "Pending"))
	if code, _, stderr := ward(t, append([]string{"audit", "checkpoint"}, cli...)...); code == 0 || !strings.Contains(stderr, "not complete") {
		t.Errorf("a checkpoint was signed over an incomplete transition: exit %d: %s", code, stderr)
	}
	if size, _, err := db.LatestCheckpoint(ctx); err != nil || size > index {
		t.Errorf("the server signed a checkpoint of %d entries over the incomplete transition at %d (%v)", size, index, err)
	}
	code, stdout, stderr = ward(t, append([]string{"keys", "rotate", "--kind", "ledger"}, cli...)...)
	if code != 0 || !strings.Contains(stdout, g.ID) {
		t.Fatalf("the rerun did not complete the pending rotation to %s: exit %d: %s %s", g.ID, code, stdout, stderr)
	}
	chain2, _ := c.keyChain(first)
	if len(chain2.Transitions()) != 2 || chain2.Transitions()[1].From != index+1 {
		t.Fatalf("after the rerun: %+v, want the second transition from %d", chain2.Transitions(), index+1)
	}
	size, err := db.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := db.LedgerEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0
	for _, r := range entries {
		e, err := ledger.DecodeEntry(r.Entry)
		if err != nil {
			t.Fatal(err)
		}
		if e.Action == ledger.TransitionAction {
			recorded++
		}
	}
	if recorded != 2 {
		t.Errorf("%d transition entries for two rotations", recorded)
	}
	c.checkpointAtLeast(chain2, index+2)
	srv.stopOK()
	if code, out := verify(); code != 0 || !strings.Contains(out, "2 key transition") {
		t.Errorf("audit verify after two rotations and a restart: exit %d: %s", code, out)
	}
	// The compliance report's key-age fact names the ledger key.
	rj := filepath.Join(t.TempDir(), "report.json")
	if code, _, stderr := ward(t, append([]string{"compliance", "report", "--json", "--out", rj}, cli...)...); code != 0 {
		t.Fatalf("compliance report: %d %s", code, stderr)
	}
	raw, err := os.ReadFile(rj)
	if err != nil {
		t.Fatal(err)
	}
	var rep compliance.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rep.Facts {
		if f.Name == compliance.FactKeyAge {
			found = f.OK && strings.Contains(f.Value, "ledger checkpoint key "+g.ID) && strings.Contains(f.Value, "2 rotations")
			if !found {
				t.Errorf("key-age fact after two ledger rotations: %+v", f)
			}
		}
	}
	if !found {
		t.Error("the compliance report has no key-age fact naming the ledger key")
	}
}

// TestLedgerKeyRotationConcurrent: two rotations at once, as from two
// replicas' machines sharing the key file and the database, interleaved
// so that each step of one falls between the other's: A takes the
// pending key and records the transition; B runs whole, takes the same
// pending key, finds A's entry and completes; A then completes too. One
// transition results: one entry, one new key, and the ledger verifies;
// a later server signs under the new key.
func TestLedgerKeyRotationConcurrent(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testLedgerKeyRotationConcurrent(t, "") })
	t.Run("postgres", func(t *testing.T) {
		testLedgerKeyRotationConcurrent(t, storetest.FreshSchema(t, "ward_ledgerkey_test_").URL)
	})
}

func testLedgerKeyRotationConcurrent(t *testing.T, dbURL string) {
	ctx := context.Background()
	dir := t.TempDir()
	args, cli := backendArgs(dir, dbURL)
	srv := startServe(t, args...)
	c := dial(t, dir)
	c.create(patient(family(t), "Before"))
	chain0, _ := c.keyChain("")
	c.checkpointAtLeast(chain0, 1)
	srv.stopOK()

	// A: the pending key and the entry.
	st := &storage{data: dir, db: dbURL}
	kf, err := st.openKeys()
	if err != nil {
		t.Fatal(err)
	}
	db, err := st.openStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lk := ledgerKeys{origin: chain0.Origin(), kf: kf}
	chain, old, err := lk.LedgerKeys()
	if err != nil {
		t.Fatal(err)
	}
	g, err := kf.BeginLedgerRotation(ctx, keys.SigningKey{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := ledger.NewSigner(lk.origin, kf.Signer(keys.KindLedger, g.ID))
	if err != nil {
		t.Fatal(err)
	}
	index, err := recordTransition(ctx, db, chain, next.VerifierKey(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// B: a whole run.
	if code, stdout, stderr := ward(t, append([]string{"keys", "rotate", "--kind", "ledger"}, cli...)...); code != 0 || !strings.Contains(stdout, g.ID) {
		t.Fatalf("the second rotation: exit %d: %s %s", code, stdout, stderr)
	}
	// A completes after B.
	if from, err := finishTransition(ctx, kf, lk, old, g.ID, next, index); err != nil || from != index+1 {
		t.Fatalf("the first rotation, completed after the second: %d, %v", from, err)
	}
	size, err := db.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.LedgerEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0
	for _, r := range rows {
		if e, err := ledger.DecodeEntry(r.Entry); err == nil && e.Action == ledger.TransitionAction {
			recorded++
		}
	}
	if recorded != 1 {
		t.Errorf("two interleaved rotations recorded %d transitions, want 1", recorded)
	}
	for _, k := range status(t, dir).Keys {
		if k.Kind == "ledger" && (k.ID != g.ID || k.Generations != 2) {
			t.Errorf("keys status after two interleaved rotations: %+v", k)
		}
	}
	srv = startServe(t, args...)
	c = dial(t, dir)
	c.create(patient(family(t), "After"))
	chain1, _ := c.keyChain(chain0.FirstKey())
	if len(chain1.Transitions()) != 1 {
		t.Fatalf("the served chain has %d transitions", len(chain1.Transitions()))
	}
	c.checkpointAtLeast(chain1, chain1.Transitions()[0].From)
	srv.stopOK()
	if code, stdout, stderr := ward(t, append([]string{"audit", "verify"}, cli...)...); code != 0 || !strings.Contains(stdout, "1 key transition") {
		t.Errorf("audit verify after interleaved rotations: exit %d: %s %s", code, stdout, stderr)
	}
}
