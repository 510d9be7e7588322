package ledger

import (
	"context"
	"math/bits"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// BenchmarkAppend measures encoding and hashing one entry into a MemLog.
func BenchmarkAppend(b *testing.B) {
	m := new(MemLog)
	e := sampleEntry(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Append(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures Verify over a log of 100,000 entries with a
// checkpoint every 1,000 entries; the target is 200,000 entries/s.
func BenchmarkVerify(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	m := newMemLog(b, n)
	log := &rawLog{entries: m.entries, hashes: m.hashes}
	s := testSigner(b, testOrigin, "log")
	var cps []SignedCheckpoint
	for size := int64(1000); size <= n; size += 1000 {
		cps = append(cps, signAt(b, log, size, s))
	}
	vs := note.VerifierList(s.Verifier())
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		rep, err := Verify(ctx, log, cps, vs, VerifyOptions{Origin: testOrigin})
		if err != nil || rep.Size != n {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// million is a MemLog of 1,000,000 entries, built once per test binary.
var million = struct {
	once  sync.Once
	log   *MemLog
	build time.Duration
}{}

// BenchmarkProveInclusion measures producing an inclusion proof in a tree
// of 1,000,000 entries; the target is under 1 ms.
func BenchmarkProveInclusion(b *testing.B) {
	const n = 1_000_000
	million.once.Do(func() {
		start := time.Now()
		million.log = newMemLog(b, n)
		million.build = time.Since(start)
	})
	b.Logf("built %d-entry MemLog in %v", n, million.build)
	ctx := context.Background()
	want := bits.Len64(uint64(n - 1)) // ceil(log2 n)
	var index int64
	for b.Loop() {
		index = (index + 7919) % n
		p, err := ProveInclusion(ctx, million.log, index, n)
		if err != nil {
			b.Fatal(err)
		}
		if len(p) > want {
			b.Fatalf("proof of %d hashes, want <= %d", len(p), want)
		}
	}
	b.ReportMetric(float64(32*want), "max-proof-bytes")
}
