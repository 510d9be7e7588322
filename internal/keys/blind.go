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
type BlindIndex struct {
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

// NewBlindIndex returns a BlindIndex under the root key.
func NewBlindIndex(root IndexKey) *BlindIndex {
	return &BlindIndex{root: root, pools: make(map[blindParam]*sync.Pool)}
}

// Sum returns hex(HMAC-SHA256(k, value)) truncated to 32 hex characters,
// where k = HKDF-SHA256(root, info = "ward blind index v1|"+type+"|"+param).
// value must already be normalised by the caller.
func (b *BlindIndex) Sum(resourceType, param, value string) string {
	pool := b.pool(resourceType, param)
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

func (b *BlindIndex) pool(typ, param string) *sync.Pool {
	key := blindParam{typ, param}
	b.mu.RLock()
	p := b.pools[key]
	b.mu.RUnlock()
	if p != nil {
		return p
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p = b.pools[key]; p != nil {
		return p
	}
	k := b.paramKey(typ, param)
	p = &sync.Pool{New: func() any { return &blindState{mac: hmac.New(sha256.New, k)} }}
	b.pools[key] = p
	return p
}

// paramKey derives the HMAC key of one (resource type, parameter).
func (b *BlindIndex) paramKey(typ, param string) []byte {
	k, err := hkdf.Key(sha256.New, b.root.b[:], nil, blindInfo+typ+"|"+param, 32)
	if err != nil {
		// HKDF-SHA256 fails only for outputs longer than 255*32 bytes.
		panic("keys: hkdf: " + err.Error())
	}
	return k
}
