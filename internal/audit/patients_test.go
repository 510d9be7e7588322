package audit

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
)

// An entry naming several patients, appended through group commit next to
// single-patient entries, is found under each of its patients and no
// other, decodes to what was written, and the log still verifies against
// its checkpoint.
func TestRecordsNamingSeveralPatients(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, _ := b.open(t)
			ctx := context.Background()
			l := New(st, Config{})
			defer l.Close()
			at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
			search := ledger.Entry{Time: at, Actor: "c", Client: "c", Action: "search", ResourceType: "Observation", Outcome: "success", Detail: "200"}
			search.SetPatients([]string{"pz", "", "px", "py", "px"})
			read := ledger.Entry{Time: at.Add(time.Second), Actor: "c", Client: "c", Action: "read", ResourceType: "Patient", ResourceID: "px", Patient: "px", Outcome: "success"}
			var recs []Record
			for _, e := range []ledger.Entry{search, read} {
				r, err := NewRecord(e)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, r)
			}
			if !slices.Equal(recs[0].Patients, []string{"px", "py", "pz"}) || recs[0].Patient != "" || !recs[0].Time.Equal(at.Truncate(time.Microsecond)) {
				t.Fatalf("search record: patient %q, patients %q, time %v", recs[0].Patient, recs[0].Patients, recs[0].Time)
			}
			if err := l.Append(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			want := map[string][]int64{"px": {0, 1}, "py": {0}, "pz": {0}, "pw": nil}
			for p, idx := range want {
				rows, err := st.LedgerEntriesByPatient(ctx, p, time.Time{}, time.Time{}, 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for _, r := range rows {
					got = append(got, r.Index)
				}
				if !slices.Equal(got, idx) {
					t.Errorf("entries of %s: %v, want %v", p, got, idx)
				}
			}
			rows, err := st.LedgerEntries(ctx, 0, 2)
			if err != nil || len(rows) != 2 {
				t.Fatalf("entries: %d, %v", len(rows), err)
			}
			d, err := ledger.DecodeEntry(rows[0].Entry)
			if err != nil || d.Patient != "" || !slices.Equal(d.Patients, []string{"px", "py", "pz"}) {
				t.Fatalf("the search entry decodes to patient %q, patients %q, %v", d.Patient, d.Patients, err)
			}
			signer := newSigner(t)
			if _, _, err := Checkpoint(ctx, st, signer); err != nil {
				t.Fatal(err)
			}
			if err := verify(ctx, st, signer); err != nil {
				t.Fatalf("a log with an entry naming several patients does not verify: %v", err)
			}
		})
	}
}
