package keys

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sealed body format: one version byte, a 12-byte random nonce, then the
// AES-256-GCM ciphertext and 16-byte tag.
const (
	sealVersion = 1
	nonceSize   = 12
	tagSize     = 16
	dekSize     = 32
	// SealOverhead is how many bytes Seal adds to the plaintext.
	SealOverhead = 1 + nonceSize + tagSize
)

// Domain tags keep the associated data of sealed bodies and of wrapped keys
// apart from each other and from any later format.
const (
	sealDomain = "ward seal v1"
	wrapDomain = "ward dek wrap v1"
)

// AAD names the place a sealed body belongs to: its resource type, id,
// version and patient compartment ("" for the shared key).
type AAD struct {
	Type        string
	ID          string
	Version     int64
	Compartment string
}

// appendAAD encodes a unambiguously: a domain tag, the format version, then
// each string with a 4-byte big-endian length prefix and the version as 8
// bytes big-endian.
func appendAAD(b []byte, a AAD) []byte {
	b = appendField(b, sealDomain)
	b = append(b, sealVersion)
	b = appendField(b, a.Type)
	b = appendField(b, a.ID)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Version)) // #nosec G115 -- AAD fields are ids and versions of at most a few hundred bytes; versions are positive
	b = appendField(b, a.Compartment)
	return b
}

// wrapAAD is the associated data binding a wrapped DEK to its compartment.
func wrapAAD(compartment string) []byte {
	b := make([]byte, 0, 8+len(wrapDomain)+len(compartment))
	b = appendField(b, wrapDomain)
	return appendField(b, compartment)
}

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s))) // #nosec G115 -- AAD fields are ids and versions of at most a few hundred bytes; versions are positive
	return append(b, s...)
}

// DataKey seals and opens the bodies of one compartment. It holds a reused
// AES-256-GCM instance and is safe for concurrent use.
type DataKey struct {
	compartment string
	aead        cipher.AEAD
	rand        io.Reader
}

// newDataKey builds a DataKey from a 32-byte DEK. The DEK bytes are not
// retained.
func newDataKey(compartment string, dek []byte, rand io.Reader) (*DataKey, error) {
	aead, err := newGCM(dek, "data key")
	if err != nil {
		return nil, err
	}
	return &DataKey{compartment: compartment, aead: aead, rand: rand}, nil
}

// Compartment names the compartment this key belongs to.
func (d *DataKey) Compartment() string { return d.compartment }

// String redacts the key.
func (d *DataKey) String() string { return "keys.DataKey(" + d.compartment + ", redacted)" }

var errWrongCompartment = errors.New("keys: aad compartment does not match the data key")

// Seal encrypts plaintext bound to aad. aad.Compartment must be the key's
// compartment. The result is version byte | nonce | ciphertext+tag.
func (d *DataKey) Seal(aad AAD, plaintext []byte) ([]byte, error) {
	if aad.Compartment != d.compartment {
		return nil, errWrongCompartment
	}
	var abuf [128]byte
	ad := appendAAD(abuf[:0], aad)
	out := make([]byte, 1+nonceSize, SealOverhead+len(plaintext))
	out[0] = sealVersion
	if _, err := io.ReadFull(d.rand, out[1:]); err != nil {
		return nil, fmt.Errorf("keys: seal: reading nonce: %w", err)
	}
	return d.aead.Seal(out, out[1:1+nonceSize], plaintext, ad), nil
}

// Open decrypts a body sealed by Seal with the same aad. Any mismatch of key,
// aad, format or content yields ErrDecrypt and no plaintext.
func (d *DataKey) Open(aad AAD, sealed []byte) ([]byte, error) {
	if aad.Compartment != d.compartment || len(sealed) < SealOverhead || sealed[0] != sealVersion {
		return nil, ErrDecrypt
	}
	var abuf [128]byte
	ad := appendAAD(abuf[:0], aad)
	pt, err := d.aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
