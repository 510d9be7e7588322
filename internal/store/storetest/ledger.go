package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

func ledgerEntry(i int64, patient string) store.LedgerEntry {
	return store.LedgerEntry{
		Index: i, Entry: []byte(fmt.Sprintf(`{"i":%d}`, i)), Patient: patient,
		Time: base.Add(time.Duration(i) * time.Second),
	}
}

func hashOf(i int64) store.LedgerHash {
	var h [store.HashSize]byte
	for k := range h {
		h[k] = byte(i) + byte(k) // #nosec G115 -- test data: the intended truncation to a byte
	}
	return store.LedgerHash{Index: i, Hash: h}
}

// appendLedger appends n entries for patient in one transaction and
// returns the first index.
func appendLedger(t *testing.T, s store.Store, n int, patient string) int64 {
	t.Helper()
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	size, err := tx.LockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		entries []store.LedgerEntry
		hashes  []store.LedgerHash
	)
	for i := size; i < size+int64(n); i++ {
		entries = append(entries, ledgerEntry(i, patient))
		hashes = append(hashes, hashOf(i))
	}
	if err := tx.AppendLedger(ctx, entries, hashes); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return size
}

func testLedger(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n, err := s.LedgerSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty ledger: size %d, %v", n, err)
	}
	if _, _, err := s.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestCheckpoint on an empty ledger: %v", err)
	}
	appendLedger(t, s, 3, "p1")
	appendLedger(t, s, 2, "p2")
	appendLedger(t, s, 2, "p1")
	if n, err := s.LedgerSize(ctx); err != nil || n != 7 {
		t.Fatalf("size %d, %v; want 7", n, err)
	}
	all, err := s.LedgerEntries(ctx, 0, 100)
	if err != nil || len(all) != 7 {
		t.Fatalf("LedgerEntries: %d, %v", len(all), err)
	}
	for i, e := range all {
		want := ledgerEntry(int64(i), e.Patient)
		if e.Index != int64(i) || string(e.Entry) != string(want.Entry) || !e.Time.Equal(want.Time) {
			t.Fatalf("entry %d = %+v, want %+v", i, e, want)
		}
	}
	part, err := s.LedgerEntries(ctx, 2, 4)
	if err != nil || len(part) != 2 || part[0].Index != 2 {
		t.Fatalf("LedgerEntries(2,4): %v, %v", part, err)
	}
	p1, err := s.LedgerEntriesByPatient(ctx, "p1", time.Time{}, time.Time{}, 0, 100)
	if err != nil || len(p1) != 5 {
		t.Fatalf("p1 has %d entries, %v; want 5", len(p1), err)
	}
	window, err := s.LedgerEntriesByPatient(ctx, "p1", base.Add(1*time.Second), base.Add(6*time.Second), 0, 100)
	if err != nil || len(window) != 3 || window[0].Index != 1 || window[2].Index != 5 {
		t.Fatalf("p1 in [1s,6s): %v, %v", window, err)
	}
	paged, err := s.LedgerEntriesByPatient(ctx, "p1", time.Time{}, time.Time{}, 1, 2)
	if err != nil || len(paged) != 2 || paged[0].Index != 1 {
		t.Fatalf("p1 page: %v, %v", paged, err)
	}
	hs, err := s.LedgerHashes(ctx, []int64{6, 0, 3})
	if err != nil || hs[0] != hashOf(6).Hash || hs[1] != hashOf(0).Hash || hs[2] != hashOf(3).Hash {
		t.Fatalf("LedgerHashes: %v", err)
	}
	if _, err := s.LedgerHashes(ctx, []int64{1, 99}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a missing hash: %v, want ErrNotFound", err)
	}

	// Appends out of sequence, or without the lock, are refused; a rolled
	// back append leaves nothing.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendLedger(ctx, []store.LedgerEntry{ledgerEntry(7, "")}, nil); err == nil {
		t.Fatal("AppendLedger without LockLedger succeeded")
	}
	size, err := tx.LockLedger(ctx)
	if err != nil || size != 7 {
		t.Fatalf("LockLedger: %d, %v", size, err)
	}
	for _, idx := range []int64{6, 8} {
		if err := tx.AppendLedger(ctx, []store.LedgerEntry{ledgerEntry(idx, "")}, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("append at %d over size 7: %v, want ErrConflict", idx, err)
		}
	}
	if err := tx.AppendLedger(ctx, []store.LedgerEntry{ledgerEntry(7, ""), ledgerEntry(9, "")}, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("append with a gap: %v, want ErrConflict", err)
	}
	if err := tx.AppendLedger(ctx, []store.LedgerEntry{ledgerEntry(7, "")}, []store.LedgerHash{hashOf(7)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.LedgerSize(ctx); n != 7 {
		t.Fatalf("size after a rolled back append: %d", n)
	}
	if _, err := s.LedgerHashes(ctx, []int64{7}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a rolled back hash is readable: %v", err)
	}

	// Checkpoints: one per size, the first kept, the largest is latest.
	for _, c := range []struct {
		size int64
		note string
	}{{3, "three"}, {7, "seven"}, {5, "five"}, {7, "seven again"}} {
		if err := s.PutCheckpoint(ctx, c.size, []byte(c.note)); err != nil {
			t.Fatal(err)
		}
	}
	if note, err := s.Checkpoint(ctx, 7); err != nil || string(note) != "seven" {
		t.Fatalf("Checkpoint(7) = %q, %v", note, err)
	}
	if size, note, err := s.LatestCheckpoint(ctx); err != nil || size != 7 || string(note) != "seven" {
		t.Fatalf("LatestCheckpoint = %d %q %v", size, note, err)
	}
	if _, err := s.Checkpoint(ctx, 4); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Checkpoint(4): %v", err)
	}
	var listed []string
	if err := s.ListCheckpoints(ctx, func(size int64, note []byte) error {
		listed = append(listed, fmt.Sprintf("%d:%s", size, note))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(listed); got != "[3:three 5:five 7:seven]" {
		t.Fatalf("ListCheckpoints: %s", got)
	}

	// Cosignatures are appended once each; the checkpoint itself is kept.
	for _, lines := range []string{"— w1 AAA\n", "— w2 BBB\n— w1 AAA\n", "— w2 BBB\n"} {
		if err := s.AddCosignatures(ctx, 5, []byte(lines)); err != nil {
			t.Fatal(err)
		}
	}
	if note, err := s.Checkpoint(ctx, 5); err != nil || string(note) != "five— w1 AAA\n— w2 BBB\n" {
		t.Fatalf("cosigned checkpoint %q, %v", note, err)
	}
	if err := s.AddCosignatures(ctx, 4, []byte("— w1 AAA\n")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cosigning a missing checkpoint: %v", err)
	}

	t.Run("Patients", func(t *testing.T) { testLedgerPatients(t, s) })
	t.Run("PatientRows", func(t *testing.T) { testLedgerPatientRows(t, s) })
	t.Run("Actors", func(t *testing.T) { testLedgerActors(t, s) })
	t.Run("SpoolMarks", func(t *testing.T) { testSpoolMarks(t, s) })
	t.Run("Pending", func(t *testing.T) { testPending(t, s) })
}

// testPending: pending entries come back whole, oldest first; a fold that
// rolls back keeps them; dropping deletes exactly the keys named, and a
// key already gone fails the whole drop.
func testPending(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	pe := func(writer string, seq int64, sec int, patients ...string) store.PendingEntry {
		return store.PendingEntry{
			PendingKey: store.PendingKey{Writer: writer, Seq: seq},
			Entry: store.LedgerEntry{Entry: []byte(fmt.Sprintf("entry %s %d", writer, seq)), Patient: "p" + writer,
				Time: at.Add(time.Duration(sec) * time.Second), Actor: "actor-" + writer, Client: "client", Patients: patients},
			Tag: []byte("tag-" + writer),
		}
	}
	if err := s.AddPending(ctx, []store.PendingEntry{pe("b", 1, 2, "x", "y"), pe("a", 1, 3), pe("a", 2, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPending(ctx, []store.PendingEntry{pe("a", 1, 9)}); err == nil {
		t.Fatal("a pending key added twice")
	}
	many := make([]store.PendingEntry, 450) // more than one INSERT holds
	for i := range many {
		many[i] = pe("c", int64(i+1), 100+i)
	}
	if err := s.AddPending(ctx, many); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingCount(ctx); err != nil || n != 453 {
		t.Fatalf("pending count %d, %v; want 453", n, err)
	}
	take := func(limit int, drop []store.PendingKey, commit bool) ([]store.PendingEntry, error) {
		t.Helper()
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.PendingEntries(ctx, limit); err == nil {
			t.Fatal("pending entries read without the ledger lock")
		}
		if _, err := tx.LockLedger(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := tx.PendingEntries(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.DropPending(ctx, drop); err != nil {
			return got, err
		}
		if commit {
			return got, tx.Commit()
		}
		return got, tx.Rollback()
	}
	got, err := take(3, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.PendingEntry{pe("a", 2, 1), pe("b", 1, 2, "x", "y"), pe("a", 1, 3)}
	if len(got) != 3 {
		t.Fatalf("took %d pending entries, want 3", len(got))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.PendingKey != w.PendingKey || string(g.Entry.Entry) != string(w.Entry.Entry) || g.Entry.Patient != w.Entry.Patient ||
			!g.Entry.Time.Equal(w.Entry.Time) || g.Entry.Actor != w.Entry.Actor || g.Entry.Client != w.Entry.Client ||
			!slices.Equal(g.Entry.Patients, w.Entry.Patients) || string(g.Tag) != string(w.Tag) {
			t.Fatalf("pending entry %d: got %+v, want %+v", i, g, w)
		}
	}
	keys := []store.PendingKey{want[0].PendingKey, want[1].PendingKey}
	if _, err := take(1, keys, false); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PendingCount(ctx); n != 453 {
		t.Fatalf("pending count after a rolled back drop: %d, want 453", n)
	}
	if _, err := take(1, keys, true); err != nil {
		t.Fatal(err)
	}
	if _, err := take(1, []store.PendingKey{want[2].PendingKey, want[0].PendingKey}, true); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("dropping a key already gone: %v, want ErrConflict", err)
	}
	if n, _ := s.PendingCount(ctx); n != 451 {
		t.Fatalf("pending count after dropping two and a failed drop: %d, want 451", n)
	}
	var rest []store.PendingKey
	for _, e := range many {
		rest = append(rest, e.PendingKey)
	}
	rest = append(rest, want[2].PendingKey)
	if _, err := take(1, rest, true); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PendingCount(ctx); n != 0 {
		t.Fatalf("pending count after dropping all: %d, want 0", n)
	}
}

// testSpoolMarks: a spool's mark commits or rolls back with the entries it
// covers, only grows, and is forgotten on request.
func testSpoolMarks(t *testing.T, s store.Store) {
	ctx := t.Context()
	mark := func(spool string, folded int64, commit bool) error {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		size, err := tx.LockLedger(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.AppendLedger(ctx, []store.LedgerEntry{ledgerEntry(size, "")}, []store.LedgerHash{hashOf(1<<40 + size)}); err != nil {
			t.Fatal(err)
		}
		if err := tx.MarkSpool(ctx, spool, folded); err != nil {
			return err
		}
		if commit {
			return tx.Commit()
		}
		return tx.Rollback()
	}
	read := func(spool string) int64 {
		t.Helper()
		n, err := s.SpoolMark(ctx, spool)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := read("a"); n != 0 {
		t.Fatalf("mark of an unknown spool: %d, want 0", n)
	}
	if err := mark("a", 5, true); err != nil {
		t.Fatal(err)
	}
	if err := mark("a", 9, false); err != nil {
		t.Fatal(err)
	}
	if n := read("a"); n != 5 {
		t.Fatalf("mark after a rolled back fold: %d, want 5", n)
	}
	if err := mark("a", 4, true); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("lowering a mark: %v, want ErrConflict", err)
	}
	if err := mark("b", 2, true); err != nil {
		t.Fatal(err)
	}
	if err := mark("a", 12, true); err != nil {
		t.Fatal(err)
	}
	if a, b := read("a"), read("b"); a != 12 || b != 2 {
		t.Fatalf("marks a=%d b=%d, want 12 and 2", a, b)
	}
	if err := s.ForgetSpool(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if a, b := read("a"), read("b"); a != 0 || b != 2 {
		t.Fatalf("after forgetting a: marks a=%d b=%d, want 0 and 2", a, b)
	}
}

// appendEntries appends entries in one transaction, numbering them from
// the ledger's size, and returns the first index.
func appendEntries(t *testing.T, s store.Store, entries ...store.LedgerEntry) int64 {
	t.Helper()
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	size, err := tx.LockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []store.LedgerHash
	for i := range entries {
		entries[i].Index = size + int64(i)
		hashes = append(hashes, hashOf(entries[i].Index))
	}
	if err := tx.AppendLedger(ctx, entries, hashes); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return size
}

// testLedgerPatients: an entry naming several patients (one search over
// several patients' data) is found under each of them, once, in time
// order with the single-patient entries, and under no one else.
// testLedger leaves 7 entries, 5 of them p1's.
func testLedgerPatients(t *testing.T, s store.Store) {
	ctx := t.Context()
	entry := func(sec int, patient string, patients ...string) store.LedgerEntry {
		return store.LedgerEntry{
			Entry: []byte(fmt.Sprintf(`{"sec":%d}`, sec)), Patient: patient, Patients: patients,
			Time: base.Add(time.Duration(sec)*time.Second + 7*time.Microsecond),
		}
	}
	first := appendEntries(t, s,
		entry(120, "", "q1", "q2", "q3"),       // a search over three patients
		entry(110, "q1"),                       // a read, earlier than the search
		entry(130, "q2", "q4", "q2", "", "q4"), // repeats, its own Patient and "" in the list
	)
	search, read, mixed := first, first+1, first+2
	byPatient := func(patient string, since, before time.Time, offset, count int) []int64 {
		t.Helper()
		rows, err := s.LedgerEntriesByPatient(ctx, patient, since, before, offset, count)
		if err != nil {
			t.Fatalf("LedgerEntriesByPatient(%s): %v", patient, err)
		}
		var idx []int64
		for _, r := range rows {
			idx = append(idx, r.Index)
		}
		return idx
	}
	never := time.Time{}
	for _, c := range []struct {
		patient string
		want    []int64
	}{
		{"q1", []int64{read, search}},  // oldest first across both indexes
		{"q2", []int64{search, mixed}}, // once each, though mixed names q2 twice
		{"q3", []int64{search}},
		{"q4", []int64{mixed}},
		{"q5", nil},
		// "" finds the entries without a single patient, as it always did;
		// "" in a list of patients is no patient.
		{"", []int64{search}},
	} {
		got := byPatient(c.patient, never, never, 0, 100)
		if c.patient == "" {
			got = slices.DeleteFunc(got, func(i int64) bool { return i < first })
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("entries of %q: %v, want %v", c.patient, got, c.want)
		}
	}
	if got := byPatient("p1", never, never, 0, 100); len(got) != 5 {
		t.Errorf("p1 has %d entries after others' were added, want 5", len(got))
	}
	// The rows come back whole, as any entry does.
	rows, err := s.LedgerEntriesByPatient(ctx, "q3", never, never, 0, 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("q3: %v, %v", rows, err)
	}
	if r := rows[0]; string(r.Entry) != `{"sec":120}` || r.Patient != "" || !r.Time.Equal(base.Add(120*time.Second+7*time.Microsecond)) {
		t.Errorf("q3's entry came back as %+v", r)
	}
	// Time windows and paging cover both indexes.
	if got := byPatient("q2", base.Add(125*time.Second), never, 0, 100); !slices.Equal(got, []int64{mixed}) {
		t.Errorf("q2 since 125s: %v", got)
	}
	if got := byPatient("q2", never, base.Add(125*time.Second), 0, 100); !slices.Equal(got, []int64{search}) {
		t.Errorf("q2 before 125s: %v", got)
	}
	if got := byPatient("q1", base.Add(120*time.Second+7*time.Microsecond), never, 0, 100); !slices.Equal(got, []int64{search}) {
		t.Errorf("q1 since the search's own time: %v", got)
	}
	if got := byPatient("q1", never, never, 1, 1); !slices.Equal(got, []int64{search}) {
		t.Errorf("q1 page 2 of size 1: %v", got)
	}
	if got := byPatient("q1", never, never, 0, 1); !slices.Equal(got, []int64{read}) {
		t.Errorf("q1 page 1 of size 1: %v", got)
	}

	// An entry naming many patients (more than one INSERT's worth) is
	// found under every one of them.
	many := make([]string, 700)
	for i := range many {
		many[i] = fmt.Sprintf("m%03d", i)
	}
	big := appendEntries(t, s, entry(140, "", many...))
	for _, p := range many {
		if got := byPatient(p, never, never, 0, 10); !slices.Equal(got, []int64{big}) {
			t.Fatalf("entries of %s: %v, want [%d]", p, got, big)
		}
	}

	// A rolled back append leaves no patient rows behind.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size, err := tx.LockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := entry(150, "", "q1", "q9")
	gone.Index = size
	if err := tx.AppendLedger(ctx, []store.LedgerEntry{gone}, []store.LedgerHash{hashOf(size)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := byPatient("q9", never, never, 0, 10); got != nil {
		t.Errorf("a rolled back entry is q9's: %v", got)
	}
	if got := byPatient("q1", never, never, 0, 10); !slices.Equal(got, []int64{read, search}) {
		t.Errorf("q1 after a rolled back append: %v", got)
	}
	// The ledger itself is unchanged by the index: entries read back in order.
	if n, err := s.LedgerSize(ctx); err != nil || n != big+1 {
		t.Fatalf("size %d, %v; want %d", n, err, big+1)
	}
}

// testLedgerPatientRows: the patient index reads back by entry index, as
// AppendLedger wrote it (one row per entry and further patient it names,
// with the entry's time), ordered by index and then bytewise by patient
// whatever the database's collation; inside a transaction it includes the
// transaction's own appends, and a rolled back append leaves none.
func testLedgerPatientRows(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := func(sec int) time.Time { return base.Add(time.Duration(sec)*time.Second + 3*time.Microsecond) }
	entry := func(sec int, patient string, patients ...string) store.LedgerEntry {
		return store.LedgerEntry{Entry: []byte(fmt.Sprintf(`{"rows":%d}`, sec)), Patient: patient, Patients: patients, Time: at(sec)}
	}
	first := appendEntries(t, s,
		entry(200, "", "r-b", "R-a", "r-c", "r_a"), // mixed case and punctuation: bytewise order is not a collation's
		entry(210, "r-b"),
		entry(220, "r-b", "r-d", "r-b", "", "r-d"),
	)
	size := first + 3
	row := func(i int64, p string, sec int) store.LedgerPatientRow {
		return store.LedgerPatientRow{Index: i, Patient: p, Time: at(sec).UTC()}
	}
	want := []store.LedgerPatientRow{
		row(first, "R-a", 200), row(first, "r-b", 200), row(first, "r-c", 200), row(first, "r_a", 200),
		row(first+2, "r-d", 220),
	}
	same := func(got, want []store.LedgerPatientRow) bool {
		return slices.EqualFunc(got, want, func(a, b store.LedgerPatientRow) bool {
			return a.Index == b.Index && a.Patient == b.Patient && a.Time.Equal(b.Time) && a.Time.Location() == time.UTC
		})
	}
	for _, c := range []struct {
		start, end int64
		want       []store.LedgerPatientRow
	}{
		{first, size, want},
		{first, first + 1, want[:4]},
		{first + 1, first + 2, nil}, // one patient, in the entry's own column
		{first + 2, size + 100, want[4:]},
		{size, 1<<63 - 1, nil},
	} {
		got, err := s.LedgerPatientRows(ctx, c.start, c.end)
		if err != nil {
			t.Fatalf("LedgerPatientRows(%d, %d): %v", c.start, c.end, err)
		}
		if !same(got, c.want) {
			t.Errorf("LedgerPatientRows(%d, %d) = %+v, want %+v", c.start, c.end, got, c.want)
		}
	}
	// From the lowest index on: the earlier subtests' rows, then these.
	all, err := s.LedgerPatientRows(ctx, -1<<63, 1<<63-1)
	if err != nil || len(all) < len(want) || !same(all[len(all)-len(want):], want) || !slices.IsSortedFunc(all, func(a, b store.LedgerPatientRow) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), strings.Compare(a.Patient, b.Patient))
	}) {
		t.Errorf("all rows: %d, %v; not ending with this subtest's or not in order", len(all), err)
	}
	if _, err := s.LedgerPatientRows(ctx, size, first); err == nil {
		t.Error("LedgerPatientRows with end before start succeeded")
	}

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	n, err := tx.LockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending := entry(230, "", "r-z", "r-y")
	pending.Index = n
	if err := tx.AppendLedger(ctx, []store.LedgerEntry{pending}, []store.LedgerHash{hashOf(n)}); err != nil {
		t.Fatal(err)
	}
	if got, err := tx.LedgerPatientRows(ctx, n, n+1); err != nil || !same(got, []store.LedgerPatientRow{row(n, "r-y", 230), row(n, "r-z", 230)}) {
		t.Fatalf("the transaction's own append: %+v, %v", got, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LedgerPatientRows(ctx, n, n+1); err != nil || got != nil {
		t.Fatalf("a rolled back append left rows: %+v, %v", got, err)
	}
}

// testLedgerSequencing appends from many goroutines over two handles: the
// ledger lock yields one gap-free sequence in which every append landed
// exactly once.
func testLedgerSequencing(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	const workers, rounds = 6, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := appendOne(t, s, fmt.Sprintf("w%d-r%d", w, r)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	n, err := a.LedgerSize(ctx)
	if err != nil || n != workers*rounds {
		t.Fatalf("size %d, %v; want %d", n, err, workers*rounds)
	}
	entries, err := b.LedgerEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, e := range entries {
		if e.Index != int64(i) || seen[string(e.Entry)] {
			t.Fatalf("entry %d: index %d, duplicate %v", i, e.Index, seen[string(e.Entry)])
		}
		seen[string(e.Entry)] = true
	}
}

// appendOne appends one entry. It does not retry: under the ledger lock
// no appender ever sees a size another has used, so a conflict is a
// sequencing failure.
func appendOne(t *testing.T, s store.Store, payload string) error {
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	size, err := tx.LockLedger(ctx)
	if err != nil {
		return err
	}
	e := store.LedgerEntry{Index: size, Entry: []byte(payload), Time: base}
	if err := tx.AppendLedger(ctx, []store.LedgerEntry{e}, []store.LedgerHash{hashOf(size)}); err != nil {
		return fmt.Errorf("append at %d: %w", size, err)
	}
	return tx.Commit()
}

// testLedgerActors: entries are found by their actor or their client
// column and time, oldest first (time, then index), keyset-paged from the
// last entry of a page without gaps or repeats even among entries of the
// same microsecond; the columns read back as appended; a rolled back
// append leaves nothing to find.
func testLedgerActors(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := func(sec int) time.Time { return base.Add(time.Duration(sec)*time.Second + 5*time.Microsecond) }
	entry := func(sec int, actor, client string) store.LedgerEntry {
		return store.LedgerEntry{Entry: []byte(fmt.Sprintf(`{"actor":%q,"client":%q}`, actor, client)), Time: at(sec), Actor: actor, Client: client}
	}
	first := appendEntries(t, s,
		entry(310, "u-1", "app-a"),
		entry(300, "u-1", "app-b"), // earlier than the one appended before it
		entry(320, "u-2", "app-a"),
		entry(320, "u-1", "app-a"), // four entries of one microsecond
		entry(320, "u-1", "app-a"),
		entry(320, "u-1", "app-a"),
		entry(320, "u-1", "app-a"),
		entry(330, "U-1", "app-a"), // another actor: ids compare exactly
		entry(340, "u-1", ""),
	)
	idx := func(k ...int) []int64 {
		var out []int64
		for _, i := range k {
			out = append(out, first+int64(i))
		}
		return out
	}
	find := func(q store.ActorQuery) []int64 {
		t.Helper()
		rows, err := s.LedgerEntriesByActor(ctx, q)
		if err != nil {
			t.Fatalf("LedgerEntriesByActor(%+v): %v", q, err)
		}
		var out []int64
		for _, r := range rows {
			out = append(out, r.Index)
		}
		return out
	}
	never := time.Time{}
	for _, c := range []struct {
		name string
		q    store.ActorQuery
		want []int64
	}{
		{"all of an actor", store.ActorQuery{Actor: "u-1", AfterIndex: -1, Count: 100}, idx(1, 0, 3, 4, 5, 6, 8)},
		{"all of a client", store.ActorQuery{Client: "app-a", AfterIndex: -1, Count: 100}, idx(0, 2, 3, 4, 5, 6, 7)},
		{"an actor in a window", store.ActorQuery{Actor: "u-1", Since: at(310), Before: at(340), AfterIndex: -1, Count: 100}, idx(0, 3, 4, 5, 6)},
		{"the window's end is open", store.ActorQuery{Actor: "u-1", Since: never, Before: at(320), AfterIndex: -1, Count: 100}, idx(1, 0)},
		{"keyset inside one microsecond", store.ActorQuery{Actor: "u-1", Since: at(320), AfterIndex: first + 4, Count: 100}, idx(5, 6, 8)},
		{"a page", store.ActorQuery{Actor: "u-1", AfterIndex: -1, Count: 2}, idx(1, 0)},
		{"nobody's", store.ActorQuery{Actor: "u-3", AfterIndex: -1, Count: 100}, nil},
		{"a count of zero", store.ActorQuery{Actor: "u-1", AfterIndex: -1}, nil},
	} {
		if got := find(c.q); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// The newest entry of an actor or a client, by time then index.
	for _, c := range []struct {
		actor, client string
		want          int64
	}{{"u-1", "", first + 8}, {"", "app-a", first + 7}, {"u-2", "", first + 2}, {"", "app-b", first + 1}} {
		got, err := s.LastLedgerEntryByActor(ctx, c.actor, c.client)
		if err != nil || got.Index != c.want {
			t.Errorf("LastLedgerEntryByActor(%q, %q) = %d, %v; want %d", c.actor, c.client, got.Index, err, c.want)
		}
	}
	if _, err := s.LastLedgerEntryByActor(ctx, "u-3", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastLedgerEntryByActor of nobody: %v, want ErrNotFound", err)
	}
	for _, bad := range [][2]string{{"", ""}, {"u-1", "app-a"}} {
		if _, err := s.LastLedgerEntryByActor(ctx, bad[0], bad[1]); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("LastLedgerEntryByActor(%q, %q): %v, want a usage error", bad[0], bad[1], err)
		}
	}
	// Paging one entry at a time from each page's last entry visits
	// every entry once, in order.
	var paged []int64
	q := store.ActorQuery{Actor: "u-1", AfterIndex: -1, Count: 1}
	for range 20 {
		rows, err := s.LedgerEntriesByActor(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		paged = append(paged, rows[0].Index)
		q.Since, q.AfterIndex = rows[0].Time, rows[0].Index
	}
	if want := idx(1, 0, 3, 4, 5, 6, 8); !slices.Equal(paged, want) {
		t.Errorf("paged one by one: %v, want %v", paged, want)
	}
	// The columns come back as appended.
	rows, err := s.LedgerEntriesByActor(ctx, store.ActorQuery{Client: "app-b", AfterIndex: -1, Count: 10})
	if err != nil || len(rows) != 1 {
		t.Fatalf("app-b: %v, %v", rows, err)
	}
	if r, want := rows[0], entry(300, "u-1", "app-b"); r.Actor != "u-1" || r.Client != "app-b" || string(r.Entry) != string(want.Entry) || !r.Time.Equal(want.Time) {
		t.Errorf("app-b's entry came back as %+v", r)
	}
	all, err := s.LedgerEntries(ctx, first, first+2)
	if err != nil || len(all) != 2 || all[0].Actor != "u-1" || all[0].Client != "app-a" || all[1].Client != "app-b" {
		t.Errorf("LedgerEntries leaves out the actor or client: %+v, %v", all, err)
	}
	for _, bad := range []store.ActorQuery{{Count: 1}, {Actor: "u-1", Client: "app-a", Count: 1}, {Actor: "u-1", Count: -1}} {
		if _, err := s.LedgerEntriesByActor(ctx, bad); err == nil {
			t.Errorf("LedgerEntriesByActor(%+v) succeeded", bad)
		}
	}

	// Inside a transaction its own appends are found; rolled back, not.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size, err := tx.LockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := entry(350, "u-9", "app-9")
	gone.Index = size
	if err := tx.AppendLedger(ctx, []store.LedgerEntry{gone}, []store.LedgerHash{hashOf(size)}); err != nil {
		t.Fatal(err)
	}
	if rows, err := tx.LedgerEntriesByActor(ctx, store.ActorQuery{Actor: "u-9", AfterIndex: -1, Count: 10}); err != nil || len(rows) != 1 {
		t.Errorf("the transaction's own entry: %v, %v", rows, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := find(store.ActorQuery{Client: "app-9", AfterIndex: -1, Count: 10}); got != nil {
		t.Errorf("a rolled back entry is found: %v", got)
	}
}
