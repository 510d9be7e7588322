package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
)

func (s *stack) checkpoint(t *testing.T) (ledger.Checkpoint, *ledger.Signer) {
	t.Helper()
	signer, err := ledger.NewSigner("ward.test/ledger", s.keyFile.LedgerSigner())
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := audit.Checkpoint(context.Background(), s.db, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ledger.OpenCheckpoint(msg, signer.Name(), note.VerifierList(signer.Verifier()))
	if err != nil {
		t.Fatal(err)
	}
	return c, signer
}

func decodeHashes(t *testing.T, v any) []tlog.Hash {
	t.Helper()
	var out []tlog.Hash
	for _, x := range v.([]any) {
		b, err := base64.StdEncoding.DecodeString(x.(string))
		if err != nil || len(b) != 32 {
			t.Fatalf("bad hash %v", x)
		}
		out = append(out, tlog.Hash(b))
	}
	return out
}

// The auditor's endpoints serve the latest checkpoint, entries and proofs
// that check against checkpoints with the RFC 6962 rules; only a token
// that may read AuditEvent gets them, and each access is itself audited.
func TestLedgerEndpoints(t *testing.T) {
	s := newStack(t)
	must(t, s.do("GET", "/ledger/checkpoint", nil), http.StatusBadRequest) // none yet
	for i := 0; i < 4; i++ {
		must(t, s.do("POST", "/fhir/Patient", patient(fmt.Sprintf("Ledger%d", i), "A")), http.StatusCreated)
	}
	older, signer := s.checkpoint(t)
	for i := 0; i < 6; i++ {
		must(t, s.do("POST", "/fhir/Patient", patient(fmt.Sprintf("Later%d", i), "B")), http.StatusCreated)
	}
	newer, _ := s.checkpoint(t)

	r := must(t, s.do("GET", "/ledger/checkpoint", nil), http.StatusOK)
	c, err := ledger.OpenCheckpoint(r.body, signer.Name(), note.VerifierList(signer.Verifier()))
	if err != nil || c != newer {
		t.Fatalf("served checkpoint %+v, %v; want %+v", c, err, newer)
	}

	var got struct {
		Entries []struct {
			Index int64           `json:"index"`
			Entry json.RawMessage `json:"entry"`
		} `json:"entries"`
	}
	r = must(t, s.do("GET", fmt.Sprintf("/ledger/entries?start=0&end=%d", newer.Size), nil), http.StatusOK)
	if err := json.Unmarshal(r.body, &got); err != nil || int64(len(got.Entries)) != newer.Size {
		t.Fatalf("entries: %d, %v", len(got.Entries), err)
	}
	for i, e := range got.Entries {
		if _, err := ledger.DecodeEntry(e.Entry); err != nil || e.Index != int64(i) {
			t.Fatalf("entry %d: %v", i, err)
		}
	}

	for _, idx := range []int64{0, 3, newer.Size - 1} {
		p := must(t, s.do("GET", fmt.Sprintf("/ledger/proof/inclusion?index=%d&size=%d", idx, newer.Size), nil), http.StatusOK).json(t)
		leaf := ledger.LeafHash(got.Entries[idx].Entry)
		if p["leaf_hash"] != base64.StdEncoding.EncodeToString(leaf[:]) {
			t.Fatalf("leaf hash of %d differs", idx)
		}
		if err := ledger.VerifyInclusion(newer, idx, leaf, decodeHashes(t, p["proof"])); err != nil {
			t.Fatalf("inclusion of %d: %v", idx, err)
		}
	}
	p := must(t, s.do("GET", fmt.Sprintf("/ledger/proof/consistency?old=%d&size=%d", older.Size, newer.Size), nil), http.StatusOK).json(t)
	if err := ledger.VerifyConsistency(older, newer, decodeHashes(t, p["proof"])); err != nil {
		t.Fatalf("consistency %d -> %d: %v", older.Size, newer.Size, err)
	}

	for _, bad := range []string{
		"/ledger/entries?start=x", "/ledger/proof/inclusion?index=-1", "/ledger/proof/inclusion?index=99999",
		"/ledger/proof/consistency?old=0", "/ledger/proof/consistency?old=5&size=99999",
	} {
		checkOutcome(t, bad, s.do("GET", bad, nil), http.StatusBadRequest)
	}
	checkOutcome(t, "unknown", s.do("GET", "/ledger/other", nil), http.StatusNotFound)
	checkOutcome(t, "no token", s.do("GET", "/ledger/checkpoint", nil, "Authorization", ""), http.StatusUnauthorized)
	narrow := s.newToken("system/Patient.rs")
	checkOutcome(t, "not an auditor", s.do("GET", "/ledger/checkpoint", nil, "Authorization", "Bearer "+narrow), http.StatusForbidden)

	before := ledgerSize(t, s)
	must(t, s.do("GET", "/ledger/checkpoint", nil), http.StatusOK)
	if e := ledgerEntries(t, s, before); len(e) != 1 || e[0].Action != "ledger-checkpoint" {
		t.Fatalf("the auditor's read was not audited once: %+v", e)
	}
}
