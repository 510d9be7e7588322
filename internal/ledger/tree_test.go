package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/bits"
	"slices"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// newMemLog returns a MemLog with n sample entries.
func newMemLog(t testing.TB, n int) *MemLog {
	t.Helper()
	m := new(MemLog)
	for i := range n {
		if _, err := m.Append(sampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// refRoot is RFC 6962's MTH written out directly, independent of tlog.
func refRoot(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := refRoot(leaves[:k]), refRoot(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// heads returns the true checkpoint of m at every size 0..n.
func heads(t testing.TB, m *MemLog) []Checkpoint {
	t.Helper()
	ctx := context.Background()
	n, _ := m.Size(ctx)
	out := make([]Checkpoint, n+1)
	for size := range n + 1 {
		root, err := TreeHash(ctx, m, size)
		if err != nil {
			t.Fatal(err)
		}
		out[size] = Checkpoint{Origin: "ward.test/log", Size: size, Root: root}
	}
	return out
}

func TestTreeHashMatchesRFC6962(t *testing.T) {
	ctx := context.Background()
	m := new(MemLog)
	var leaves [][]byte
	for i := range 70 {
		// Append in uneven batches: hashes must not depend on batching.
		batch := []Entry{sampleEntry(i)}
		if i%3 == 0 {
			batch = append(batch, sampleEntry(1000+i))
		}
		if _, err := m.Append(batch...); err != nil {
			t.Fatal(err)
		}
		for _, e := range batch {
			b, _ := e.Encode()
			leaves = append(leaves, b)
		}
		n, _ := m.Size(ctx)
		for size := int64(0); size <= n; size += max(1, n/7) {
			got, err := TreeHash(ctx, m, size)
			if err != nil {
				t.Fatal(err)
			}
			if want := refRoot(leaves[:size]); got != tlog.Hash(want) {
				t.Fatalf("TreeHash(%d) = %x, want %x", size, got, want)
			}
		}
	}
	got, _ := readAll(t, m)
	if !slices.EqualFunc(got, leaves, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatal("ReadEntries does not return what was appended")
	}
}

// readAll reads every entry of m.
func readAll(t testing.TB, m *MemLog) ([][]byte, int64) {
	ctx := context.Background()
	n, _ := m.Size(ctx)
	es, err := m.ReadEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	return es, n
}

func TestStoredHashesMatchMemLog(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t, 20)
	// A second log built through the exported StoredHashes, as a database
	// appender would, stores the same hashes.
	var stored []tlog.Hash
	hr := hashSlice{&stored}
	entries, n := readAll(t, m)
	for i, b := range entries {
		hs, err := StoredHashes(ctx, hr, int64(i), LeafHash(b))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	want, err := m.ReadHashes(ctx, seq(0, tlog.StoredHashIndex(0, n)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stored, want) {
		t.Fatal("StoredHashes differs from MemLog")
	}
}

type hashSlice struct{ h *[]tlog.Hash }

func (s hashSlice) ReadHashes(_ context.Context, indexes []int64) ([]tlog.Hash, error) {
	var out []tlog.Hash
	for _, x := range indexes {
		if x >= int64(len(*s.h)) {
			return nil, errors.New("missing")
		}
		out = append(out, (*s.h)[x])
	}
	return out, nil
}

func seq(lo, hi int64) []int64 {
	var out []int64
	for x := lo; x < hi; x++ {
		out = append(out, x)
	}
	return out
}

func ceilLog2(n int64) int {
	if n <= 1 {
		return 0
	}
	return bits.Len64(uint64(n - 1))
}

func proofBytes(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// TestProofsAcceptedByIndependentVerifier checks every inclusion and
// consistency proof of small trees with Ward's verifier and with
// github.com/transparency-dev/merkle, so a third party's tool accepts them.
func TestProofsAcceptedByIndependentVerifier(t *testing.T) {
	ctx := context.Background()
	const max = 40
	m := newMemLog(t, max)
	entries, _ := readAll(t, m)
	heads := make([]Checkpoint, max+1)
	for size := int64(1); size <= max; size++ {
		root, err := TreeHash(ctx, m, size)
		if err != nil {
			t.Fatal(err)
		}
		heads[size] = Checkpoint{Origin: "o", Size: size, Root: root}
	}
	for size := int64(1); size <= max; size++ {
		c := heads[size]
		for index := range size {
			p, err := ProveInclusion(ctx, m, index, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) > ceilLog2(size) || (index == 0 && len(p) != ceilLog2(size)) {
				t.Fatalf("inclusion proof of %d in %d has %d hashes, ceil(log2 n) = %d", index, size, len(p), ceilLog2(size))
			}
			leaf := LeafHash(entries[index])
			if err := VerifyInclusion(c, index, leaf, p); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", index, size, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(size), leaf[:], proofBytes(p), c.Root[:]); err != nil {
				t.Fatalf("merkle rejects inclusion of %d in %d: %v", index, size, err)
			}
		}
		for old := int64(1); old <= size; old++ {
			p, err := ProveConsistency(ctx, m, old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(heads[old], c, p); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", old, size, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(old), uint64(size), proofBytes(p), heads[old].Root[:], c.Root[:]); err != nil {
				t.Fatalf("merkle rejects consistency %d -> %d: %v", old, size, err)
			}
		}
	}
	empty := Checkpoint{Origin: "o", Root: tlog.Hash(sha256.Sum256(nil))}
	if err := VerifyConsistency(empty, heads[max], nil); err != nil {
		t.Fatalf("empty tree: %v", err)
	}
}

func TestProveRejectsBadArguments(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t, 5)
	for _, c := range [][2]int64{{-1, 5}, {5, 5}, {0, 0}, {6, 10}, {0, 6}} {
		if _, err := ProveInclusion(ctx, m, c[0], c[1]); err == nil {
			t.Errorf("ProveInclusion(%d, %d) succeeded", c[0], c[1])
		}
	}
	for _, c := range [][2]int64{{-1, 5}, {3, 2}, {1, 6}} {
		if _, err := ProveConsistency(ctx, m, c[0], c[1]); err == nil {
			t.Errorf("ProveConsistency(%d, %d) succeeded", c[0], c[1])
		}
	}
}

// flips returns every single-bit corruption of p.
func flips(p []tlog.Hash) [][]tlog.Hash {
	var out [][]tlog.Hash
	for i := range p {
		for bit := range 8 * tlog.HashSize {
			q := slices.Clone(p)
			q[i][bit/8] ^= 1 << (bit % 8)
			out = append(out, q)
		}
	}
	return out
}

// reshaped returns truncated and extended versions of p.
func reshaped(p []tlog.Hash) [][]tlog.Hash {
	extra := tlog.Hash{1}
	out := [][]tlog.Hash{
		append(slices.Clone(p), extra),
		append([]tlog.Hash{extra}, p...),
	}
	if len(p) > 0 {
		out = append(out, p[1:], p[:len(p)-1], append(slices.Clone(p), p[len(p)-1]))
	}
	return out
}

func TestInclusionProofTamper(t *testing.T) {
	ctx := context.Background()
	const n = 37
	m := newMemLog(t, 2*n)
	entries, _ := readAll(t, m)
	hs := heads(t, m)
	c := hs[n]
	rejected, total := 0, 0
	expectReject := func(what string, err error) {
		t.Helper()
		total++
		if err == nil {
			t.Errorf("accepted %s", what)
			return
		}
		if !errors.Is(err, ErrProof) {
			t.Errorf("%s: error %v does not wrap ErrProof", what, err)
		}
		rejected++
	}
	for _, index := range []int64{0, 1, 17, 31, 32, 35, 36} {
		p, err := ProveInclusion(ctx, m, index, n)
		if err != nil {
			t.Fatal(err)
		}
		leaf := LeafHash(entries[index])
		for _, q := range flips(p) {
			expectReject("bit-flipped proof", VerifyInclusion(c, index, leaf, q))
		}
		for _, q := range reshaped(p) {
			expectReject("truncated or extended proof", VerifyInclusion(c, index, leaf, q))
		}
		for other := int64(-1); other <= n+1; other++ {
			if other != index {
				expectReject("wrong index", VerifyInclusion(c, other, leaf, p))
			}
		}
		// The proof checked against the log's true checkpoint at any other
		// size. (A size changed while keeping the root is not tested: a
		// proof binds the root, and the signature binds size to root.)
		for size := range int64(2*n + 1) {
			if size != n {
				expectReject("wrong size", VerifyInclusion(hs[size], index, leaf, p))
			}
		}
		for _, q := range flips([]tlog.Hash{leaf}) {
			expectReject("wrong leaf", VerifyInclusion(c, index, q[0], p))
		}
		for _, q := range flips([]tlog.Hash{c.Root}) {
			bad := c
			bad.Root = q[0]
			expectReject("wrong root", VerifyInclusion(bad, index, leaf, p))
		}
	}
	t.Logf("E3 inclusion: %d/%d corrupted proofs rejected", rejected, total)
}

func TestConsistencyProofTamper(t *testing.T) {
	ctx := context.Background()
	const n = 37
	m := newMemLog(t, 2*n)
	hs := heads(t, m)
	newer := hs[n]
	rejected, total := 0, 0
	expectReject := func(what string, err error) {
		t.Helper()
		total++
		if err == nil {
			t.Errorf("accepted %s", what)
			return
		}
		if !errors.Is(err, ErrProof) {
			t.Errorf("%s: error %v does not wrap ErrProof", what, err)
		}
		rejected++
	}
	for _, old := range []int64{1, 2, 7, 16, 32, 33, 36, 37} {
		older := hs[old]
		p, err := ProveConsistency(ctx, m, old, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyConsistency(older, newer, p); err != nil {
			t.Fatalf("good proof %d -> %d rejected: %v", old, n, err)
		}
		for _, q := range flips(p) {
			expectReject("bit-flipped proof", VerifyConsistency(older, newer, q))
		}
		for _, q := range reshaped(p) {
			expectReject("truncated or extended proof", VerifyConsistency(older, newer, q))
		}
		// The proof checked against true checkpoints at other sizes.
		for size := range int64(2*n + 1) {
			// Every tree extends the empty one, with an empty proof.
			emptyOK := size == 0 && len(p) == 0
			if size != old && !emptyOK {
				expectReject("wrong old size", VerifyConsistency(hs[size], newer, p))
			}
			if size != n {
				expectReject("wrong new size", VerifyConsistency(older, hs[size], p))
			}
		}
		for _, q := range flips([]tlog.Hash{older.Root}) {
			bad := older
			bad.Root = q[0]
			expectReject("wrong old root", VerifyConsistency(bad, newer, p))
		}
		for _, q := range flips([]tlog.Hash{newer.Root}) {
			bad := newer
			bad.Root = q[0]
			expectReject("wrong new root", VerifyConsistency(older, bad, p))
		}
		other := older
		other.Origin = "other.example/log"
		expectReject("other origin", VerifyConsistency(other, newer, p))
	}
	t.Logf("E3 consistency: %d/%d corrupted proofs rejected", rejected, total)
}

// TestMemLogConcurrentAppend checks that concurrent appenders produce one
// gap-free sequence whose hashes verify.
func TestMemLogConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	m := new(MemLog)
	var wg sync.WaitGroup
	firsts := make(chan int64, 400)
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				first, err := m.Append(sampleEntry(g*1000+2*i), sampleEntry(g*1000+2*i+1))
				if err != nil {
					t.Error(err)
					return
				}
				firsts <- first
			}
		})
	}
	wg.Wait()
	close(firsts)
	seen := map[int64]bool{}
	for f := range firsts {
		if seen[f] || f%2 != 0 {
			t.Fatalf("batch start %d reused or split", f)
		}
		seen[f] = true
	}
	rep, err := Verify(ctx, m, nil, nil, VerifyOptions{Origin: "ward.test/log"})
	if err != nil || rep.Size != 400 {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
}
