package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// BenchmarkVerifyAtStart measures the start check (VerifyAtStart) on a
// SQLite ledger of WARD_BENCH_LEDGER entries (default 100,000) whose
// latest checkpoint leaves a tail unsigned, as after a crash, against a
// full Verify of the same ledger, which is what the start would cost if
// it re-hashed everything:
//
//	go test ./internal/audit -run '^$' -bench VerifyAtStart -benchtime 5x
func BenchmarkVerifyAtStart(b *testing.B) {
	n := 100_000
	if v := os.Getenv("WARD_BENCH_LEDGER"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("WARD_BENCH_LEDGER=%q: want a number of entries, at least 1000", v)
		}
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "ward.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	signer := newSigner(b)
	at := time.Unix(1700000000, 0).UTC()
	appendRange := func(from, to int) {
		for start := from; start < to; start += 4096 {
			recs := make([]Record, 0, 4096)
			for i := start; i < min(start+4096, to); i++ {
				e := ledger.Entry{Time: at.Add(time.Duration(i) * time.Millisecond), Actor: "client-7f3a9c", Client: "client-7f3a9c",
					Source: "10.0.0.7", Action: "read", ResourceType: "Observation", ResourceID: fmt.Sprintf("obs-%08d", i), Version: "1",
					Patient: fmt.Sprintf("pat-%06d", i%5000), Outcome: "success", RequestID: fmt.Sprintf("%024x", i)}
				rec, err := NewRecord(e)
				if err != nil {
					b.Fatal(err)
				}
				recs = append(recs, rec)
			}
			tx, err := st.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := AppendInTx(ctx, tx, recs); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	const tail = 1000 // entries after the latest checkpoint
	appendRange(0, n-tail)
	if _, _, err := Checkpoint(ctx, st, signer); err != nil {
		b.Fatal(err)
	}
	appendRange(n-tail, n)
	latest, _, err := st.LatestCheckpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("ledger of %d entries, latest checkpoint at %d: %d unsigned", n, latest, int64(n)-latest)
	b.Run("start", func(b *testing.B) {
		for b.Loop() {
			rep, err := VerifyAtStart(ctx, st, signer, nil)
			if err != nil || rep.Size != int64(n) {
				b.Fatalf("%+v %v", rep, err)
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			cps, err := StoredCheckpoints(ctx, st)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ledger.Verify(ctx, Source(st), cps, note.VerifierList(signer.Verifier()), ledger.VerifyOptions{Origin: signer.Name()}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
