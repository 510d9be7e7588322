package keys

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"
)

// noCompare makes a struct type incomparable with ==, so that key types can
// only be compared in constant time through their Equal methods.
type noCompare [0]func()

// IndexKey is the 32-byte root key of the blind indexes.
type IndexKey struct {
	_ noCompare
	b [32]byte
}

// NewIndexKey copies a 32-byte root key.
func NewIndexKey(b []byte) (IndexKey, error) {
	var k IndexKey
	if len(b) != len(k.b) {
		return IndexKey{}, fmt.Errorf("keys: index key has %d bytes, want 32", len(b))
	}
	copy(k.b[:], b)
	return k, nil
}

// String redacts the key.
func (IndexKey) String() string { return "keys.IndexKey(redacted)" }

// GoString redacts the key.
func (k IndexKey) GoString() string { return k.String() }

// Equal reports in constant time whether k and o are the same key.
func (k IndexKey) Equal(o IndexKey) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// MACKey is a 32-byte HMAC-SHA256 key, used for tamper-proof paging links.
type MACKey struct {
	_ noCompare
	b [32]byte
}

// NewMACKey copies a 32-byte MAC key.
func NewMACKey(b []byte) (MACKey, error) {
	var k MACKey
	if len(b) != len(k.b) {
		return MACKey{}, fmt.Errorf("keys: mac key has %d bytes, want 32", len(b))
	}
	copy(k.b[:], b)
	return k, nil
}

// String redacts the key.
func (MACKey) String() string { return "keys.MACKey(redacted)" }

// GoString redacts the key.
func (k MACKey) GoString() string { return k.String() }

// Equal reports in constant time whether k and o are the same key.
func (k MACKey) Equal(o MACKey) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// Sum returns HMAC-SHA256(k, msg).
func (k MACKey) Sum(msg []byte) []byte {
	m := hmac.New(sha256.New, k.b[:])
	m.Write(msg)
	return m.Sum(nil)
}

// Verify reports in constant time whether mac is HMAC-SHA256(k, msg).
func (k MACKey) Verify(msg, mac []byte) bool { return hmac.Equal(k.Sum(msg), mac) }

// blindInfo prefixes the HKDF info string of every blind-index key.
const blindInfo = "ward blind index v1|"

// BlindSize is the length in hex characters of a blind index (16 bytes).
const BlindSize = 32

// BlindIndex computes blind indexes: keyed, truncated hashes of search
// values that identify a person. It is safe for concurrent use.
//
// One made by NewBlindIndex has one key. One made by LocalFile.BlindIndex
// follows the key file's index generations: Sum hashes under the
// generation writes use, Sums under every live generation (while a
// rotation re-indexes, searches match rows of the old and the new key).
type BlindIndex struct {
	fixed *blindGens
	file  *LocalFile
	now   func() time.Time
	// checked is when the key file was last looked at (unix nanoseconds).
	checked atomic.Int64
}

// blindRefresh is how often a BlindIndex following a key file looks for
// a change: a rotation's announcement waits several times this long
// before writes may use the new generation.
const blindRefresh = time.Second

// blindGens is the set of live index generations.
type blindGens struct {
	write *blindGen   // the generation new index rows use
	all   []*blindGen // write first, then the others, newest first
}

// blindGen derives and caches the per-parameter HMAC keys of one root.
type blindGen struct {
	id   string
	root IndexKey

	mu    sync.RWMutex
	pools map[blindParam]*sync.Pool // of *blindState
}

// blindState is a reusable HMAC state with scratch buffers, so that Sum
// allocates only its result.
type blindState struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

type blindParam struct{ typ, param string }

func newBlindGen(id string, root IndexKey) *blindGen {
	return &blindGen{id: id, root: root, pools: make(map[blindParam]*sync.Pool)}
}

// NewBlindIndex returns a BlindIndex under the one root key.
func NewBlindIndex(root IndexKey) *BlindIndex {
	g := newBlindGen("", root)
	return &BlindIndex{fixed: &blindGens{write: g, all: []*blindGen{g}}}
}

// gens returns the live generations, looking at the key file at most once
// per blindRefresh. A key file that cannot be read keeps the generations
// last read: the rows already written stay findable.
func (b *BlindIndex) gens() *blindGens {
	if b.fixed != nil {
		return b.fixed
	}
	now := b.now().UnixNano()
	if last := b.checked.Load(); now-last >= int64(blindRefresh) && b.checked.CompareAndSwap(last, now) {
		_ = b.file.refresh()
	}
	b.file.mu.RLock()
	defer b.file.mu.RUnlock()
	return b.file.blind
}

// Sum returns hex(HMAC-SHA256(k, value)) truncated to 32 hex characters,
// where k = HKDF-SHA256(root, info = "ward blind index v1|"+type+"|"+param)
// and root is the generation writes use. value must already be
// normalised by the caller.
func (b *BlindIndex) Sum(resourceType, param, value string) string {
	return b.gens().write.sum(resourceType, param, value)
}

// Sums returns the blind index of value under every live generation, the
// one writes use first: a search matches a row equal to any of them.
func (b *BlindIndex) Sums(resourceType, param, value string) []string {
	gs := b.gens()
	out := make([]string, len(gs.all))
	for i, g := range gs.all {
		out[i] = g.sum(resourceType, param, value)
	}
	return out
}

// Generation names the generation Sum uses ("" for NewBlindIndex's).
func (b *BlindIndex) Generation() string { return b.gens().write.id }

func (g *blindGen) sum(resourceType, param, value string) string {
	pool := g.pool(resourceType, param)
	st := pool.Get().(*blindState)
	st.mac.Reset()
	st.in = append(st.in[:0], value...)
	st.mac.Write(st.in)
	st.mac.Sum(st.sum[:0])
	var out [BlindSize]byte
	hex.Encode(out[:], st.sum[:BlindSize/2])
	if cap(st.in) <= 4096 {
		pool.Put(st) // do not keep huge scratch buffers alive
	}
	return string(out[:])
}

func (g *blindGen) pool(typ, param string) *sync.Pool {
	key := blindParam{typ, param}
	g.mu.RLock()
	p := g.pools[key]
	g.mu.RUnlock()
	if p != nil {
		return p
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if p = g.pools[key]; p != nil {
		return p
	}
	k := g.paramKey(typ, param)
	p = &sync.Pool{New: func() any { return &blindState{mac: hmac.New(sha256.New, k)} }}
	g.pools[key] = p
	return p
}

// paramKey derives the HMAC key of one (resource type, parameter).
func (g *blindGen) paramKey(typ, param string) []byte {
	k, err := hkdf.Key(sha256.New, g.root.b[:], nil, blindInfo+typ+"|"+param, 32)
	if err != nil {
		// HKDF-SHA256 fails only for outputs longer than 255*32 bytes.
		panic("keys: hkdf: " + err.Error())
	}
	return k
}
