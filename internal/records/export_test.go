package records_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/records"
)

// H2 at the records service: an export that disclosed more patients than
// one entry may name (ledger.MaxPatients) is recorded in parts, in one
// group, that together name every patient it emitted, and nothing else;
// a refused kick-off names no job.
func TestExportNamesEveryPatient(t *testing.T) {
	ctx := context.Background()
	svc, db := newService(t, records.Config{MaxBundleEntries: 2000})
	sys := service(t, "system/*.cruds")
	n := ledger.MaxPatients + 5
	var entries []string
	for i := 0; i < n; i++ {
		entries = append(entries, `{"resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}`)
	}
	res, err := fhir.Parse([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`), fhir.Limits{MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, err := fhir.ParseBundle(res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Transaction(ctx, sys, b); err != nil {
		t.Fatal(err)
	}

	reader := service(t, "system/Patient.rs")
	if _, err := svc.PlanExport(ctx, reader, records.ExportRequest{Job: "job1", Level: records.ExportPatient, Types: []string{"Observation"}}); err == nil {
		t.Fatal("a kick-off for a type the caller may not search was planned")
	}
	plan, err := svc.PlanExport(ctx, reader, records.ExportRequest{Job: "job2", Level: records.ExportPatient})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Types(); !slices.Equal(got, []string{"Patient"}) {
		t.Fatalf("plan types %v, want only Patient", got)
	}
	var emitted []string
	if err := svc.Export(ctx, reader, plan, func(e records.Entry) error {
		emitted = append(emitted, e.Compartment)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(emitted) != n {
		t.Fatalf("exported %d patients, want %d", len(emitted), n)
	}
	size, err := db.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.LedgerEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	parts := 0
	for _, row := range rows {
		e, err := ledger.DecodeEntry(row.Entry)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Action == "export-request" && e.Outcome == "denied" && strings.Contains(e.Detail, "export-job"):
			t.Errorf("a refused kick-off names a job: %q", e.Detail)
		case e.Action == "export":
			parts++
			if !strings.Contains(e.Detail, "export-job=job2") || !strings.Contains(e.Detail, fmt.Sprintf("part=%d/2", parts)) ||
				strings.Contains(e.Detail, ledger.PatientsTruncated) {
				t.Errorf("export entry detail %q", e.Detail)
			}
			named = append(named, e.Patients...)
			if e.Patient != "" {
				named = append(named, e.Patient)
			}
		}
	}
	slices.Sort(named)
	slices.Sort(emitted)
	if parts != 2 || !slices.Equal(named, emitted) {
		t.Errorf("%d export entries name %d patients; want 2 naming the %d emitted", parts, len(named), len(emitted))
	}
}
