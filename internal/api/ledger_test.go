package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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
	s.flushLedger()
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
	must(t, s.do("GET", "/ledger/checkpoint", nil, s.auditor()...), http.StatusBadRequest) // none yet
	for i := 0; i < 4; i++ {
		must(t, s.do("POST", "/fhir/Patient", patient(fmt.Sprintf("Ledger%d", i), "A")), http.StatusCreated)
	}
	older, signer := s.checkpoint(t)
	for i := 0; i < 6; i++ {
		must(t, s.do("POST", "/fhir/Patient", patient(fmt.Sprintf("Later%d", i), "B")), http.StatusCreated)
	}
	newer, _ := s.checkpoint(t)

	r := must(t, s.do("GET", "/ledger/checkpoint", nil, s.auditor()...), http.StatusOK)
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
	r = must(t, s.do("GET", fmt.Sprintf("/ledger/entries?start=0&end=%d", newer.Size), nil, s.auditor()...), http.StatusOK)
	if err := json.Unmarshal(r.body, &got); err != nil || int64(len(got.Entries)) != newer.Size {
		t.Fatalf("entries: %d, %v", len(got.Entries), err)
	}
	for i, e := range got.Entries {
		if _, err := ledger.DecodeEntry(e.Entry); err != nil || e.Index != int64(i) {
			t.Fatalf("entry %d: %v", i, err)
		}
	}

	for _, idx := range []int64{0, 3, newer.Size - 1} {
		p := must(t, s.do("GET", fmt.Sprintf("/ledger/proof/inclusion?index=%d&size=%d", idx, newer.Size), nil, s.auditor()...), http.StatusOK).json(t)
		leaf := ledger.LeafHash(got.Entries[idx].Entry)
		if p["leaf_hash"] != base64.StdEncoding.EncodeToString(leaf[:]) {
			t.Fatalf("leaf hash of %d differs", idx)
		}
		if err := ledger.VerifyInclusion(newer, idx, leaf, decodeHashes(t, p["proof"])); err != nil {
			t.Fatalf("inclusion of %d: %v", idx, err)
		}
	}
	p := must(t, s.do("GET", fmt.Sprintf("/ledger/proof/consistency?old=%d&size=%d", older.Size, newer.Size), nil, s.auditor()...), http.StatusOK).json(t)
	if err := ledger.VerifyConsistency(older, newer, decodeHashes(t, p["proof"])); err != nil {
		t.Fatalf("consistency %d -> %d: %v", older.Size, newer.Size, err)
	}

	for _, bad := range []string{
		"/ledger/entries?start=x", "/ledger/proof/inclusion?index=-1", "/ledger/proof/inclusion?index=99999",
		"/ledger/proof/consistency?old=0", "/ledger/proof/consistency?old=5&size=99999",
	} {
		checkOutcome(t, bad, s.do("GET", bad, nil, s.auditor()...), http.StatusBadRequest)
	}
	checkOutcome(t, "unknown", s.do("GET", "/ledger/other", nil, s.auditor()...), http.StatusNotFound)
	checkOutcome(t, "no token", s.do("GET", "/ledger/checkpoint", nil, "Authorization", ""), http.StatusUnauthorized)
	narrow := s.newToken("system/Patient.rs")
	checkOutcome(t, "not an auditor", s.do("GET", "/ledger/checkpoint", nil, "Authorization", "Bearer "+narrow), http.StatusForbidden)
	// A8: a wildcard does not cover audit data, in v2 or v1 form.
	for _, scope := range []string{"system/*.cruds", "system/*.rs", "system/*.read", "system/*.*"} {
		checkOutcome(t, scope, s.do("GET", "/ledger/checkpoint", nil, "Authorization", "Bearer "+s.newToken(scope)), http.StatusForbidden)
	}

	before := ledgerSize(t, s)
	must(t, s.do("GET", "/ledger/checkpoint", nil, s.auditor()...), http.StatusOK)
	if e := ledgerEntries(t, s, before); len(e) != 1 || e[0].Action != "ledger-checkpoint" {
		t.Fatalf("the auditor's read was not audited once: %+v", e)
	}
}

// The AuditEvent view: read and search ledger entries as FHIR AuditEvents;
// writing one is refused (A8).
func TestAuditEventView(t *testing.T) {
	s := newStack(t)
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Viewed", "Person")), http.StatusCreated))
	must(t, s.do("GET", "/fhir/Patient/"+id, nil), http.StatusOK)
	must(t, s.do("GET", "/fhir/Patient/nope", nil), http.StatusNotFound)

	b := must(t, s.do("GET", "/fhir/AuditEvent?patient="+id, nil, s.auditor()...), http.StatusOK).json(t)
	entries := b["entry"].([]any)
	if b["total"] != float64(2) || len(entries) != 2 {
		t.Fatalf("AuditEvents of the patient: total %v", b["total"])
	}
	newest := entries[0].(map[string]any)["resource"].(map[string]any)
	if newest["action"] != "R" || newest["outcome"] != "0" || newest["subtype"].([]any)[0].(map[string]any)["code"] != "read" {
		t.Fatalf("newest AuditEvent: %v", newest)
	}
	if got := must(t, s.do("GET", "/fhir/AuditEvent?action=C&patient="+id, nil, s.auditor()...), http.StatusOK).json(t); got["total"] != float64(1) {
		t.Fatalf("creates of the patient: %v", got["total"])
	}
	if got := must(t, s.do("GET", "/fhir/AuditEvent?outcome=4&entity=Patient/nope", nil, s.auditor()...), http.StatusOK).json(t); got["total"] != float64(1) {
		t.Fatalf("failed reads of Patient/nope: %v", got["total"])
	}
	if got := must(t, s.do("GET", "/fhir/AuditEvent?date=ge2000-01-01&date=le2999-01-01&_count=1", nil, s.auditor()...), http.StatusOK).json(t); len(got["entry"].([]any)) != 1 {
		t.Fatal("_count=1 did not page")
	}
	one := must(t, s.do("GET", "/fhir/AuditEvent/0", nil, s.auditor()...), http.StatusOK).json(t)
	if one["resourceType"] != "AuditEvent" || one["id"] != "0" {
		t.Fatalf("AuditEvent/0: %v", one)
	}
	must(t, s.do("GET", "/fhir/AuditEvent/999999", nil, s.auditor()...), http.StatusNotFound)
	checkOutcome(t, "bad param", s.do("GET", "/fhir/AuditEvent?name=x", nil, s.auditor()...), http.StatusBadRequest)
	ae := map[string]any{
		"resourceType": "AuditEvent", "type": map[string]any{"code": "rest"}, "recorded": "2020-01-01T00:00:00Z",
		"agent":  []any{map[string]any{"requestor": true, "who": map[string]any{"display": "forger"}}},
		"source": map[string]any{"observer": map[string]any{"display": "forger"}},
	}
	checkOutcome(t, "create", s.do("POST", "/fhir/AuditEvent", ae), http.StatusForbidden)
	checkOutcome(t, "update", s.do("PUT", "/fhir/AuditEvent/0", ae), http.StatusForbidden)
	checkOutcome(t, "delete", s.do("DELETE", "/fhir/AuditEvent/0", nil), http.StatusForbidden)
	tx := tx("transaction", map[string]any{"resource": ae, "request": map[string]any{"method": "POST", "url": "AuditEvent"}})
	checkOutcome(t, "transaction", s.do("POST", "/fhir", tx), http.StatusForbidden)
	b2 := tx
	b2["type"] = "batch"
	resp := must(t, s.do("POST", "/fhir", b2), http.StatusOK).json(t)
	if st := resp["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)["status"]; st != "403 Forbidden" {
		t.Fatalf("an AuditEvent written through a batch: %v", st)
	}
	narrow := s.newToken("system/Patient.rs")
	checkOutcome(t, "not an auditor", s.do("GET", "/fhir/AuditEvent", nil, "Authorization", "Bearer "+narrow), http.StatusForbidden)
	// A8: a wildcard does not cover audit data, in v2 or v1 form.
	for _, scope := range []string{"system/*.cruds", "system/*.rs", "system/*.read", "system/*.*"} {
		tok := "Bearer " + s.newToken(scope)
		checkOutcome(t, scope+" search", s.do("GET", "/fhir/AuditEvent", nil, "Authorization", tok), http.StatusForbidden)
		checkOutcome(t, scope+" read", s.do("GET", "/fhir/AuditEvent/0", nil, "Authorization", tok), http.StatusForbidden)
	}
	// Nor can a client registered with a wildcard ask for it.
	c, secret, err := s.auth.CreateClient(context.Background(), "wildcard", []string{"system/*.cruds"})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/AuditEvent.rs"}}
	if r := s.formPost("/oauth2/token", form, "Authorization", basic(c.ID, secret.Reveal())); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "invalid_scope") {
		t.Errorf("a wildcard client asked for system/AuditEvent.rs: %d %s", r.status, r.body)
	}
}
