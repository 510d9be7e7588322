package records_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
)

// BenchmarkBlindReindex measures the re-index rate of a blind-index key
// rotation: pass 1 over 1,000 current Patient versions (each with an
// identifier, a name, a gender and a birth date), in batches of 500, each
// version's body decrypted, parsed, its index computed under the new key
// and its rows replaced, and the cursor recorded in the key file after
// every batch. It reports resources/s; PostgreSQL runs when
// WARD_TEST_POSTGRES is set.
func BenchmarkBlindReindex(b *testing.B) {
	for _, bc := range []struct {
		name string
		open openBlindStore
	}{{"sqlite", sqliteBlindStore}, {"postgres", postgresBlindStore}} {
		b.Run(bc.name, func(b *testing.B) { benchBlindReindex(b, bc.open) })
	}
}

func benchBlindReindex(b *testing.B, open openBlindStore) {
	const n = 1000
	ctx := context.Background()
	keyPath := filepath.Join(b.TempDir(), "keys.json")
	if err := keys.CreateLocalFile(keyPath, keys.LocalParams{}, rand.Reader); err != nil {
		b.Fatal(err)
	}
	kf, err := keys.OpenLocalFile(keyPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	db := open(b)
	svc := rotService(b, db, kf, nil)
	t := &testing.T{}
	sys := service(t, "system/*.cruds")
	for i := range n {
		if _, _, err := svc.Update(ctx, sys, "Patient", fmt.Sprintf("p%02d", i), parse(t, rotPatient(i, true)), 0); err != nil {
			b.Fatal(err)
		}
	}
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		id, err := kf.AnnounceIndex(ctx)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now().Add(keys.AnnounceWait + time.Second)
		if _, err := svc.ReindexStep(ctx, kf, now, 500); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for {
			st, err := svc.ReindexStep(ctx, kf, now, 500)
			if err != nil {
				b.Fatal(err)
			}
			if st.Pass == 2 {
				if st.Done != n {
					b.Fatalf("rewrote %d versions, want %d", st.Done, n)
				}
				break
			}
		}
		total += time.Since(start)
		b.StopTimer()
		// Pass 2 finds every version recent; end the rotation directly.
		rot, _, _ := kf.IndexRotation()
		if err := kf.ReindexProgress(ctx, id, rot.Cursor, keys.ReindexCursor{Pass: 2, Done: n}); err != nil {
			b.Fatal(err)
		}
		if err := kf.FinishReindex(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "resources/s")
}
