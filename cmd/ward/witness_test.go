package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/tlsconfig"
)

// startWitness runs `ward witness --dev` in process until it prints its
// verifier key, and returns that key and a function that stops it.
func startWitness(t *testing.T, addr, dir string, logs ...string) (vkey string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	args := []string{"witness", "--dev", "--addr", addr, "--data", dir, "--name", "localhost/test-witness"}
	for _, l := range logs {
		args = append(args, "--log", l)
	}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, stdout, stderr) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("ward witness exited with %d; log:\n%s", code, stderr.String())
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, rest, ok := strings.Cut(stdout.String(), "verifier key: "); ok && strings.HasSuffix(rest, "\n") {
			return strings.TrimSpace(rest), stop
		}
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("ward witness exited with %d; log:\n%s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ward witness not ready; log:\n%s", stderr.String())
		}
	}
}

// serveLedgerKey reads the ledger's origin and verifier key from serve's
// start log line.
func serveLedgerKey(t *testing.T, log string) (origin, vkey string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg    string `json:"msg"`
			Origin string `json:"ledger_origin"`
			Key    string `json:"ledger_key"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "ward listening" {
			return rec.Origin, rec.Key
		}
	}
	t.Fatalf("no start line in the serve log:\n%s", log)
	return "", ""
}

// Two parties: a Ward server publishing its ledger to a directory and to a
// `ward witness` run by someone else (its own dev CA). The witness's
// stored checkpoint carries its cosignature and is one that `ward audit
// verify --checkpoint` proves the ledger extends.
func TestWitnessEndToEnd(t *testing.T) {
	witnessDir := t.TempDir()
	// The witness's dev CA exists before the server starts, so that the
	// server can be told to trust it.
	wtls, _, err := tlsconfig.EnsureDev(filepath.Join(witnessDir, "tls"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	witnessAddr := freeAddr(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	pubDir := filepath.Join(t.TempDir(), "published")
	srv := startServe(t, "--dev", "--data", dataDir, "--ledger-publish-dir", pubDir,
		"--ledger-witness", "https://"+witnessAddr, "--ledger-witness-ca", wtls.CACert)
	origin, ledgerKey := serveLedgerKey(t, srv.stderr.String())
	witnessKey, stopWitness := startWitness(t, witnessAddr, witnessDir, origin+"="+ledgerKey)

	c := dial(t, dataDir)
	for i := range 3 {
		c.create(patient(family(t), "Witnessed"+string(rune('A'+i))))
	}

	ledgerV, err := note.NewVerifier(ledgerKey)
	if err != nil {
		t.Fatal(err)
	}
	witnessV, err := ledger.NewCosignatureVerifier(witnessKey)
	if err != nil {
		t.Fatal(err)
	}
	state, err := ledger.NewFileWitnessState(filepath.Join(witnessDir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	// Token issuance and three creates are at least four entries.
	var size int64
	var cosigned []byte
	deadline := time.Now().Add(15 * time.Second)
	for size < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("witness at size %d after 15s; serve log:\n%s", size, srv.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
		if size, cosigned, err = state.Latest(context.Background(), origin); err != nil {
			t.Fatal(err)
		}
	}
	n, err := note.Open(cosigned, note.VerifierList(ledgerV, witnessV))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("witness's checkpoint is not signed by the ledger and cosigned by the witness: %v", err)
	}
	// The cosignature is kept with the stored checkpoint.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "ward.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var stored []byte
		if err := raw.QueryRow(`SELECT note FROM ledger_checkpoints WHERE size = ?`, size).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if sn, err := note.Open(stored, note.VerifierList(ledgerV, witnessV)); err == nil && len(sn.Sigs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored checkpoint of size %d does not carry the witness's cosignature", size)
		}
	}
	raw.Close()
	// The log line comes before the cosignature is stored, so it is there now.
	if !strings.Contains(srv.stderr.String(), `"msg":"ledger checkpoint cosigned"`) {
		t.Errorf("serve did not log the cosignature")
	}
	if strings.Contains(srv.stderr.String(), "storing a ledger cosignature failed") {
		t.Errorf("serve could not store the cosignature: %s", srv.stderr.String())
	}
	srv.stopOK()
	stopWitness()

	saved := filepath.Join(t.TempDir(), "witnessed.checkpoint")
	if err := os.WriteFile(saved, cosigned, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := ward(t, "audit", "verify", "--data", dataDir, "--checkpoint", saved, "--vkey", ledgerKey)
	if code != 0 || !strings.Contains(out, "extends 1 saved checkpoint") {
		t.Fatalf("audit verify against the witnessed checkpoint: %d\n%s%s", code, out, errOut)
	}
	published, err := filepath.Glob(filepath.Join(pubDir, "*.checkpoint"))
	if err != nil || len(published) == 0 {
		t.Fatalf("nothing published to the directory: %v", err)
	}
	for _, p := range published {
		b, _ := os.ReadFile(p)
		if _, err := ledger.OpenCheckpoint(b, origin, note.VerifierList(ledgerV)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if mode := fileMode(t, p); mode != 0o444 {
			t.Errorf("%s mode %v, want 0444", p, mode)
		}
	}

	// The witness keeps its key across restarts, and refuses to be renamed.
	if mode := fileMode(t, filepath.Join(witnessDir, "witness-key.json")); mode != 0o600 {
		t.Errorf("witness key mode %v", mode)
	}
	again, stopAgain := startWitness(t, freeAddr(t), witnessDir, origin+"="+ledgerKey)
	stopAgain()
	if again != witnessKey {
		t.Errorf("witness key changed across restarts: %s, then %s", witnessKey, again)
	}
	if code, _, _ := ward(t, "witness", "--dev", "--addr", freeAddr(t), "--data", witnessDir, "--name", "other/name", "--log", origin+"="+ledgerKey); code != 2 {
		t.Errorf("renamed witness: exit %d, want 2", code)
	}
	keyFile := filepath.Join(witnessDir, "witness-key.json")
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := ward(t, "witness", "--dev", "--addr", freeAddr(t), "--data", witnessDir, "--log", origin+"="+ledgerKey); code != 1 || !strings.Contains(errOut, "0600") {
		t.Errorf("witness key readable by others: exit %d (%s), want 1", code, errOut)
	}
	if code, _, _ := ward(t, "witness", "--dev", "--data", t.TempDir()); code != 2 {
		t.Errorf("witness without --log: exit %d, want 2", code)
	}
}

func TestWitnessTargetFlag(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cos, err := ledger.NewCosigner("witness.example/w1", key, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	vkey := cos.VerifierKey()
	if w, err := witnessTarget("https://w.example/a?x=1"); err != nil || w.URL != "https://w.example/a?x=1" || w.Key != nil {
		t.Fatalf("URL only: %+v %v", w, err)
	}
	if w, err := witnessTarget("https://w.example/a=" + vkey); err != nil || w.URL != "https://w.example/a" || w.Key == nil || w.Key.Name() != "witness.example/w1" {
		t.Fatalf("URL=VKEY: %+v %v", w, err)
	}
	for _, bad := range []string{"http://w.example", "w.example=" + vkey + "x", ""} {
		if _, err := witnessTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
