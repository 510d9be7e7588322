package audit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// patientIndexBatch is the number of entries VerifyPatientIndex reads at a
// time; an entry names at most ledger.MaxPatients patients.
const patientIndexBatch = 1024

// VerifyPatientIndex checks the columns and rows by which the store finds
// ledger entries by patient, actor or client, and time
// (LedgerEntriesByPatient: the accounting of disclosures,
// AuditEvent?patient=; LedgerEntriesByActor: breach scoping) against the
// first size entries themselves. The Merkle tree covers the entries'
// encodings only, so whoever can write to the database could otherwise
// delete or edit an index row, or an entry's patient, actor, client or
// time column, and hide an entry from "who saw patient X" or "what did
// user Y touch" without breaking the tree.
//
// Each entry's patient column must equal its Patient, its actor and client
// columns its Actor and Client, and its time column its Time (to the
// microsecond); its patient index rows must be exactly one
// for each patient among its Patients other than its Patient, each with
// the entry's time; and no index row may name an entry the ledger does not
// hold. The index is rebuilt from the decoded entries, so the entries must
// have been shown authentic first (ledger.Verify). The first difference is
// returned as a *ledger.VerifyError naming the entry and what is wrong;
// other errors are failures to read st. It returns the number of index
// rows checked.
func VerifyPatientIndex(ctx context.Context, st store.LedgerReader, size int64) (int64, error) {
	var rows int64
	for start := int64(0); start < size; start += patientIndexBatch {
		end := min(start+patientIndexBatch, size)
		entries, err := st.LedgerEntries(ctx, start, end)
		if err != nil {
			return rows, fmt.Errorf("audit: patient index: entries [%d, %d): %w", start, end, err)
		}
		index, err := st.LedgerPatientRows(ctx, start, end)
		if err != nil {
			return rows, fmt.Errorf("audit: patient index: rows of [%d, %d): %w", start, end, err)
		}
		for i, stored := range entries {
			if want := start + int64(i); stored.Index != want {
				return rows, &ledger.VerifyError{Index: want, Reason: "the entry is missing from the store"}
			}
			n := 0
			for n < len(index) && index[n].Index == stored.Index {
				n++
			}
			if err := checkIndexed(stored, index[:n]); err != nil {
				return rows, err
			}
			rows += int64(n)
			index = index[n:]
		}
		if int64(len(entries)) != end-start {
			return rows, &ledger.VerifyError{Index: start + int64(len(entries)), Reason: "the entry is missing from the store"}
		}
		if len(index) > 0 {
			return rows, strayRow(index[0])
		}
	}
	below, err := st.LedgerPatientRows(ctx, math.MinInt64, 0)
	if err != nil {
		return rows, fmt.Errorf("audit: patient index: rows outside the ledger: %w", err)
	}
	if len(below) > 0 {
		return rows, strayRow(below[0])
	}
	// Rows past size may be those of entries appended since: an entry
	// commits with its rows, and the ledger only grows, so a row is stray
	// only past the size read after it.
	above, err := st.LedgerPatientRows(ctx, size, math.MaxInt64)
	if err != nil || len(above) == 0 {
		return rows, wrapStray(err)
	}
	now, err := st.LedgerSize(ctx)
	if err != nil {
		return rows, wrapStray(err)
	}
	for _, r := range above {
		if r.Index >= now {
			return rows, strayRow(r)
		}
	}
	return rows, nil
}

func wrapStray(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("audit: patient index: rows outside the ledger: %w", err)
}

func strayRow(r store.LedgerPatientRow) error {
	return &ledger.VerifyError{Index: r.Index, Reason: fmt.Sprintf(
		"the patient index files entry %d under patient %q, but the ledger holds no such entry", r.Index, r.Patient)}
}

// checkIndexed compares one stored entry's columns and index rows, sorted
// by patient, with what its encoding says they must be.
func checkIndexed(stored store.LedgerEntry, rows []store.LedgerPatientRow) error {
	bad := func(format string, args ...any) error {
		return &ledger.VerifyError{Index: stored.Index, Reason: fmt.Sprintf(format, args...)}
	}
	e, err := ledger.DecodeEntry(stored.Entry)
	if err != nil {
		return &ledger.VerifyError{Index: stored.Index, Reason: "entry is malformed", Err: err}
	}
	at := e.Time.UTC().Truncate(time.Microsecond)
	if stored.Patient != e.Patient {
		return bad("the patient column says %q but the entry names %q: the entry is filed under the wrong patient", stored.Patient, e.Patient)
	}
	if stored.Actor != e.Actor {
		return bad("the actor column says %q but the entry's actor is %q: the entry is filed under the wrong actor", stored.Actor, e.Actor)
	}
	if stored.Client != e.Client {
		return bad("the client column says %q but the entry's client is %q: the entry is filed under the wrong client", stored.Client, e.Client)
	}
	if !stored.Time.Equal(at) {
		return bad("the time column says %s but the entry's time is %s: the entry is filed under the wrong time",
			stored.Time.UTC().Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
	}
	want := slices.DeleteFunc(slices.Clone(ledger.CanonicalPatients(e.Patients)), func(p string) bool { return p == e.Patient })
	for i, r := range rows {
		switch {
		case r.Patient == e.Patient && e.Patient != "":
			return bad("the patient index files the entry under %q, its patient column's, a second time", r.Patient)
		case i > 0 && rows[i-1].Patient == r.Patient:
			return bad("the patient index files the entry under patient %q twice", r.Patient)
		case i >= len(want) || r.Patient < want[i]:
			return bad("the patient index files the entry under patient %q, whom it does not name", r.Patient)
		case r.Patient > want[i]:
			return bad("the patient index lacks patient %q, whom the entry names", want[i])
		case !r.Time.Equal(at):
			return bad("the patient index files the entry under patient %q at %s, but the entry's time is %s",
				r.Patient, r.Time.UTC().Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		}
	}
	if len(rows) < len(want) {
		return bad("the patient index lacks patient %q, whom the entry names", want[len(rows)])
	}
	return nil
}
