package records_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// TestAccessLogReachesEveryEntry: a patient's access log pages through the
// ledger's patient index to its last entry however many there are (an
// AuditEvent search reads only the newest 10,000), oldest first, and
// names nobody else's accesses.
func TestAccessLogReachesEveryEntry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const many = 10050
	base := time.Now().UTC().Add(-time.Hour)
	recs := make([]audit.Record, 0, many+1)
	for i := range many {
		rec, err := audit.NewRecord(ledger.Entry{Time: base.Add(time.Duration(i) * time.Millisecond), Actor: "u" + strconv.Itoa(i),
			Client: "app", Action: "read", ResourceType: "Observation", ResourceID: "o" + strconv.Itoa(i), Patient: patA, Outcome: "success"})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	rec, err := audit.NewRecord(ledger.Entry{Time: base, Actor: "u", Client: "app", Action: "read", Patient: patB, Outcome: "success"})
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, rec)
	if err := store.ReadWrite(ctx, f.db, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, recs) }); err != nil {
		t.Fatal(err)
	}
	auditor := service(t, "system/AuditEvent.rs")
	total := func() int {
		rows, err := f.db.LedgerEntriesByPatient(ctx, patA, time.Time{}, time.Time{}, 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}()
	if total <= many {
		t.Fatalf("%d entries name the patient, want more than %d", total, many)
	}
	first, err := f.svc.AccessLog(ctx, auditor, patA, url.Values{"_count": {"5"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Matches) != 5 || !first.More || !bytes.Contains(first.Matches[0].Body, []byte(`"Observation/o0"`)) {
		t.Fatalf("first page: %d entries, more %v", len(first.Matches), first.More)
	}
	last, err := f.svc.AccessLog(ctx, auditor, patA, url.Values{"_count": {"10"}, "_offset": {strconv.Itoa(total - 4)}}, false)
	if err != nil {
		t.Fatal(err)
	}
	// The log's own reads are entries naming the patient too: the last
	// page holds the first read of the log, and what was there before it.
	if len(last.Matches) < 4 || last.More {
		t.Fatalf("last page: %d entries, more %v", len(last.Matches), last.More)
	}
	for _, e := range append(first.Matches, last.Matches...) {
		if bytes.Contains(e.Body, []byte("Patient/"+patB)) {
			t.Errorf("the access log of %s shows an entry naming %s", patA, patB)
		}
	}
	// Nobody else's, and no other filter than time and paging.
	if _, err := f.svc.AccessLog(ctx, service(t, "system/*.rs"), patA, nil, false); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("a service without audit scope: %v, want ErrForbidden", err)
	}
	if _, err := f.svc.AccessLog(ctx, auditor, patA, url.Values{"agent": {"app"}}, false); !errors.Is(err, records.ErrInvalid) {
		t.Errorf("an agent filter: %v, want ErrInvalid", err)
	}
}
