package incident

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestScopeAtScale measures scoping on a large ledger; it runs only with
// WARD_BENCH_SCOPE=1. It generates WARD_BENCH_SCOPE_ENTRIES entries
// (default 10,000,000) over a year, 20,000 of them by the actor under
// scrutiny, directly into a store in transactions of 50,000 with their
// tree hashes and one signed checkpoint, then times Scope over the year,
// a month and a day, by actor and by client, and Verify of the year's
// report (and, with WARD_BENCH_SCOPE_SCAN=1, a scan of every entry, as
// scoping without the index would read). On SQLite by default (WARD_BENCH_SCOPE_DB names a database file
// to keep, and reuse when it already holds the ledger); on PostgreSQL with
// WARD_BENCH_SCOPE_BACKEND=postgres and WARD_TEST_POSTGRES.
func TestScopeAtScale(t *testing.T) {
	if os.Getenv("WARD_BENCH_SCOPE") != "1" {
		t.Skip("set WARD_BENCH_SCOPE=1 to generate a large ledger and time scoping on it")
	}
	ctx := context.Background()
	n := envInt("WARD_BENCH_SCOPE_ENTRIES", 10_000_000)
	cfg := genConfig{Entries: n, TargetEntries: 20000, Target: "mallory", Start: t0, Span: 365 * 24 * time.Hour, Batch: 50000, Seed: 11}
	// A fixed key, so that a kept database's checkpoint stays verifiable.
	signer, err := ledger.NewSigner("ward.bench/ledger", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger verifier key (for ward incident scope --vkey): %s", signer.VerifierKey())
	var (
		st     store.Store
		dbFile string
	)
	if os.Getenv("WARD_BENCH_SCOPE_BACKEND") == "postgres" {
		sc := storetest.FreshSchema(t, "ward_scope_bench_")
		st, err = postgres.Open(ctx, sc.URL)
	} else {
		dbFile = os.Getenv("WARD_BENCH_SCOPE_DB")
		if dbFile == "" {
			dbFile = filepath.Join(t.TempDir(), "ward.db")
		}
		st, err = sqlite.Open(ctx, dbFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	size, err := st.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case size == 0:
		start := time.Now()
		last := start
		err := generate(ctx, st, signer, cfg, func(done int) {
			if time.Since(last) > 30*time.Second {
				last = time.Now()
				t.Logf("generated %d entries in %s", done, time.Since(start).Round(time.Second))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		t.Logf("generation: %d entries in %s (%.0f entries/s), with tree hashes and one signed checkpoint", n, d.Round(time.Second), float64(n)/d.Seconds())
	case size != int64(n):
		t.Fatalf("the database holds %d entries, not %d: remove it or set WARD_BENCH_SCOPE_ENTRIES", size, n)
	default:
		t.Logf("reusing the ledger of %d entries in %s", size, dbFile)
	}
	if dbFile != "" {
		logSizes(t, dbFile)
	}

	var year *Report
	for _, c := range []struct {
		name string
		q    Query
	}{
		{"actor, the whole year (cold)", Query{Actor: "mallory", From: t0, To: t0.Add(cfg.Span)}},
		{"actor, the whole year (warm)", Query{Actor: "mallory", From: t0, To: t0.Add(cfg.Span)}},
		{"actor, one month", Query{Actor: "mallory", From: t0.Add(100 * 24 * time.Hour), To: t0.Add(130 * 24 * time.Hour)}},
		{"actor, one day", Query{Actor: "mallory", From: t0.Add(200 * 24 * time.Hour), To: t0.Add(201 * 24 * time.Hour)}},
		{"client, one day", Query{Client: "app-3", From: t0.Add(200 * 24 * time.Hour), To: t0.Add(201 * 24 * time.Hour)}},
		{"an actor with 1/5000 of the traffic, the whole year", Query{Actor: "u-42", From: t0, To: t0.Add(cfg.Span)}},
	} {
		start := time.Now()
		r, err := Scope(ctx, st, signer.Verifier(), c.q, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		entries := len(r.Disclosures) + len(r.Attempts) + len(r.Other)
		t.Logf("scope %s: %s for %d entries (%d disclosures, %d patients, %d attempts), every one proven against the checkpoint of %d",
			c.name, d.Round(time.Millisecond), entries, len(r.Disclosures), len(r.Patients), len(r.Attempts), r.CheckpointSize)
		if year == nil {
			year = r
		}
	}
	if os.Getenv("WARD_BENCH_SCOPE_SCAN") == "1" {
		// What scoping costs without the actor index: read and decode
		// every entry.
		start := time.Now()
		found := 0
		for from := int64(0); from < int64(n); from += 10000 {
			rows, err := st.LedgerEntries(ctx, from, min(int64(n), from+10000))
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				e, err := ledger.DecodeEntry(row.Entry)
				if err != nil {
					t.Fatal(err)
				}
				if e.Actor == "mallory" {
					found++
				}
			}
		}
		t.Logf("without the index: a scan decoding every entry finds the actor's %d entries in %s, before any proof", found, time.Since(start).Round(time.Second))
	}
	var buf bytes.Buffer
	if err := year.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := Verify(year, signer.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	t.Logf("verify the year's report: %s; its JSON is %d MB", time.Since(start).Round(time.Millisecond), buf.Len()>>20)
}

// logSizes logs the size of the database file and of the ledger's tables
// and indexes (SQLite's dbstat table, when the build has it).
func logSizes(t *testing.T, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("database file: %d MB", fi.Size()>>20)
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE 'ledger%' OR name LIKE 'sqlite_autoindex_ledger%' GROUP BY name ORDER BY 2 DESC`)
	if err != nil {
		t.Logf("no table sizes: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name string
			size int64
		)
		if err := rows.Scan(&name, &size); err != nil {
			t.Fatal(err)
		}
		t.Logf("  %-40s %6d MB", name, size>>20)
	}
}

// BenchmarkIngest appends realistic entries (5,000 users, 20 clients,
// the generator's mix) from 64 concurrent callers, each waiting until its
// entry is durable, with and without the actor and client indexes
// (dropped in the same run), and reports entries/s: the ingest cost of
// breach scoping's index. "commit": group commit into the database;
// "spool": through the spool as ward serve runs SQLite. The ledger holds
// 200,000 entries first, so that the indexes are not tiny.
func BenchmarkIngest(b *testing.B) {
	for _, path := range []string{"commit", "spool"} {
		for _, variant := range []string{"with-actor-index", "without-actor-index"} {
			b.Run(path+"/"+variant, func(b *testing.B) { benchIngest(b, path, variant == "with-actor-index") })
		}
	}
}

func benchIngest(b *testing.B, path string, withIndex bool) {
	ctx := context.Background()
	file := filepath.Join(b.TempDir(), "ward.db")
	st, err := sqlite.Open(ctx, file)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if !withIndex {
		raw, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(5000)")
		if err != nil {
			b.Fatal(err)
		}
		for _, q := range []string{`DROP INDEX ledger_entries_actor`, `DROP INDEX ledger_entries_client`} {
			if _, err := raw.Exec(q); err != nil {
				b.Fatal(err)
			}
		}
		raw.Close()
	}
	cfg := genConfig{Entries: 1 << 30, TargetEntries: 1, Target: "mallory", Start: t0, Span: 1 << 62, Seed: 3}
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	next := 0
	batch := func(k int) []audit.Record {
		recs := make([]audit.Record, 0, k)
		for range k {
			rec, err := audit.NewRecord(genEntry(cfg, rng, next))
			if err != nil {
				b.Fatal(err)
			}
			next++
			recs = append(recs, rec)
		}
		return recs
	}
	for range 200000 / 10000 {
		recs := batch(10000)
		if err := store.ReadWrite(ctx, st, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, recs) }); err != nil {
			b.Fatal(err)
		}
	}
	var l *audit.Log
	if path == "spool" {
		if l, err = audit.OpenSpooled(ctx, st, b.TempDir(), audit.Config{}); err != nil {
			b.Fatal(err)
		}
	} else {
		l = audit.New(st, audit.Config{})
	}
	recs := make(chan audit.Record, b.N)
	for _, r := range batch(b.N) {
		recs <- r
	}
	close(recs)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(ctx, <-recs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// Close folds what the spool still holds: part of the cost.
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
