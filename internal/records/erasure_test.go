package records_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// officer is a privacy officer's caller.
func officer(id string) records.Caller {
	return records.Caller{Subject: policy.Subject{ClientID: "app", UserID: id, Role: policy.RolePrivacyOfficer}, RequestID: "req-" + id}
}

// copyDatabase takes a consistent copy of a SQLite database, as a backup
// would.
func copyDatabase(t *testing.T, from, to string) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+from)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`VACUUM INTO ?`, to); err != nil {
		t.Fatal(err)
	}
}

// TestErasure is catalogue cases H3 and D6 at the records service: two
// privacy officers erase a patient; from then on the patient's data
// answers gone through every path, in this service and in one started on
// a database copy taken before the erasure (which re-applies it);
// another patient, shared resources and the ledger are intact; the
// certificate verifies; a legal hold blocks it.
func TestErasure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyPath, dbPath := filepath.Join(dir, "keys.json"), filepath.Join(dir, "ward.db")
	if err := keys.CreateLocalFile(keyPath, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	certifier, err := ledger.NewCertifier("test/certificates", priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := records.Config{Certifier: certifier}
	svc, db := newServiceAt(t, cfg, keyPath, dbPath, nil)
	f := &fixture{t: t, svc: svc, db: db, sys: service(t, "system/*.cruds")}
	for _, id := range []string{patA, patB} {
		f.put("Patient", id, `{"resourceType":"Patient","id":"`+id+`","active":true}`)
	}
	obsA := f.create(observation(patA, "a-1", ""))
	f.put("Observation", obsA, strings.Replace(observation(patA, "a-1b", ""), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+obsA+`",`, 1))
	obsB := f.create(observation(patB, "b-1", ""))
	org := f.create(`{"resourceType":"Organization","name":"Clinic"}`)
	backup := filepath.Join(t.TempDir(), "before.db")
	copyDatabase(t, dbPath, backup)

	po1, po2 := officer("po1"), officer("po2")
	req := records.ErasureRequest{Patient: patA, Reason: "patient-request", LegalBasis: "gdpr-art17-1a", FreshMFA: true}
	for name, c := range map[string]struct {
		caller records.Caller
		req    records.ErasureRequest
		want   error
	}{
		"a practitioner":         {caller(t, patA, "user/*.cruds"), req, records.ErrForbidden},
		"a service":              {f.sys, req, records.ErrForbidden},
		"without a fresh factor": {po1, records.ErasureRequest{Patient: patA, Reason: req.Reason, LegalBasis: req.LegalBasis}, records.ErrStepUp},
		"an unknown reason":      {po1, records.ErasureRequest{Patient: patA, Reason: "because", LegalBasis: req.LegalBasis, FreshMFA: true}, records.ErrInvalid},
		"an unknown legal basis": {po1, records.ErasureRequest{Patient: patA, Reason: req.Reason, LegalBasis: "x", FreshMFA: true}, records.ErrInvalid},
		"an unknown patient":     {po1, records.ErasureRequest{Patient: "nobody", Reason: req.Reason, LegalBasis: req.LegalBasis, FreshMFA: true}, records.ErrNotFound},
		"a non-patient resource": {po1, records.ErasureRequest{Patient: org, Reason: req.Reason, LegalBasis: req.LegalBasis, FreshMFA: true}, records.ErrNotFound},
	} {
		if _, err := svc.RequestErasure(ctx, c.caller, c.req); !errors.Is(err, c.want) {
			t.Errorf("request by %s: %v, want %v", name, err, c.want)
		}
	}
	er, err := svc.RequestErasure(ctx, po1, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ApproveErasure(ctx, po1, patA, er.ID, true); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("approval by the requester: %v, want ErrForbidden", err)
	}
	if _, err := svc.ApproveErasure(ctx, po2, patA, er.ID, false); !errors.Is(err, records.ErrStepUp) {
		t.Errorf("approval without a fresh factor: %v, want ErrStepUp", err)
	}
	if _, err := svc.ApproveErasure(ctx, po2, patB, er.ID, true); !errors.Is(err, records.ErrNotFound) {
		t.Errorf("approval through another patient: %v, want ErrNotFound", err)
	}
	if err := records.SetLegalHold(ctx, db, time.Now(), patA, "litigation", "cli", false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ApproveErasure(ctx, po2, patA, er.ID, true); !errors.Is(err, records.ErrConflict) || !strings.Contains(err.Error(), "litigation") {
		t.Errorf("approval under a legal hold: %v, want ErrConflict naming the hold", err)
	}
	if _, err := svc.Read(ctx, f.sys, "Observation", obsA); err != nil {
		t.Fatalf("the held patient's data after a refused approval: %v", err)
	}
	if err := records.SetLegalHold(ctx, db, time.Now(), patA, "", "cli", true); err != nil {
		t.Fatal(err)
	}

	cert, err := svc.ApproveErasure(ctx, po2, patA, er.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Erasure.Versions != 3 || cert.Erasure.Approver != "po2" || cert.Patient == patA || !strings.HasPrefix(cert.Patient, "hmac:") {
		t.Errorf("certificate: %d versions, approver %s, patient %s", cert.Erasure.Versions, cert.Erasure.Approver, cert.Patient)
	}
	lines, err := ledger.OpenCertificate(cert.Signed, cert.VerifierKey)
	if err != nil || !slices.Contains(lines, "erasure "+er.ID) || !slices.Contains(lines, "patient "+cert.Patient) || strings.Contains(string(cert.Signed), patA) {
		t.Errorf("signed certificate %q: %v", cert.Signed, err)
	}
	if _, err := svc.ApproveErasure(ctx, officer("po3"), patA, er.ID, true); !errors.Is(err, records.ErrConflict) {
		t.Errorf("a second approval: %v, want ErrConflict", err)
	}

	gone(t, svc, f.sys, obsA)
	intact(t, svc, f.sys, obsB, org)
	// The ledger keeps its entries, and holds the request and the erasure.
	size, _ := db.LedgerSize(ctx)
	rows, _ := db.LedgerEntries(ctx, 0, size)
	var actions []string
	for _, row := range rows {
		e, err := ledger.DecodeEntry(row.Entry)
		if err != nil {
			t.Fatal(err)
		}
		if e.Patient == patA && strings.HasPrefix(e.Action, "erasure") {
			actions = append(actions, e.Action+" "+e.Outcome)
		}
	}
	if !slices.Contains(actions, "erasure-request success") || !slices.Contains(actions, "erasure success") {
		t.Errorf("the ledger's erasure entries: %v", actions)
	}

	// A database restored from before the erasure: the key file refuses
	// the patient's key at once, and the start re-applies the erasure.
	restored, rdb := newServiceAt(t, records.Config{}, keyPath, backup, nil)
	if _, err := restored.Read(ctx, f.sys, "Observation", obsA); !errors.Is(err, records.ErrGone) {
		t.Errorf("the erased patient's data in the restored copy: %v, want ErrGone", err)
	}
	n, err := restored.ReapplyErasures(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ReapplyErasures = %d, %v; want 1", n, err)
	}
	if n, err := restored.ReapplyErasures(ctx); err != nil || n != 0 {
		t.Errorf("re-applying again = %d, %v; want 0", n, err)
	}
	if _, err := rdb.Version(ctx, "Observation", obsA, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an erased version in the restored copy after re-applying: %v", err)
	}
	gone(t, restored, f.sys, obsA)
	intact(t, restored, f.sys, obsB, org)
}

// gone checks that patient A and its Observation answer gone through
// every path, and that nothing can be written into the compartment.
func gone(t *testing.T, svc *records.Service, sys records.Caller, obsA string) {
	t.Helper()
	ctx := context.Background()
	for name, fn := range map[string]func() error{
		"read patient":     func() error { _, err := svc.Read(ctx, sys, "Patient", patA); return err },
		"read observation": func() error { _, err := svc.Read(ctx, sys, "Observation", obsA); return err },
		"vread":            func() error { _, err := svc.VRead(ctx, sys, "Observation", obsA, 1); return err },
		"history": func() error {
			_, err := svc.History(ctx, sys, records.HistoryRequest{Type: "Observation", ID: obsA})
			return err
		},
		"everything": func() error { return svc.Everything(ctx, sys, patA, func(records.Entry) error { return nil }) },
		"write": func() error {
			_, err := svc.Create(ctx, sys, parse(t, observation(patA, "a-new", "")))
			return err
		},
	} {
		if err := fn(); !errors.Is(err, records.ErrGone) {
			t.Errorf("%s of the erased patient: %v, want ErrGone", name, err)
		}
	}
	res, err := svc.Search(ctx, sys, "Observation", url.Values{"subject": {"Patient/" + patA}})
	if err != nil || len(res.Matches) != 0 {
		t.Errorf("search of the erased patient's data: %d matches, %v", len(res.Matches), err)
	}
	res, err = svc.Search(ctx, sys, "Observation", url.Values{"identifier": {"urn:test|a-1b"}})
	if err != nil || len(res.Matches) != 0 {
		t.Errorf("search by the erased data's identifier: %d matches, %v", len(res.Matches), err)
	}
}

// intact checks that another patient's data and a shared resource read
// and search as before.
func intact(t *testing.T, svc *records.Service, sys records.Caller, obsB, org string) {
	t.Helper()
	ctx := context.Background()
	for _, r := range [][2]string{{"Patient", patB}, {"Observation", obsB}, {"Organization", org}} {
		if _, err := svc.Read(ctx, sys, r[0], r[1]); err != nil {
			t.Errorf("%s/%s after the erasure: %v", r[0], r[1], err)
		}
	}
	res, err := svc.Search(ctx, sys, "Observation", url.Values{"subject": {"Patient/" + patB}})
	if err != nil || len(res.Matches) != 1 {
		t.Errorf("search of another patient after the erasure: %d matches, %v", len(res.Matches), err)
	}
}
