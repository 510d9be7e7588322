// Package keys is Ward's keyring: key-encryption keys (KEKs) held by a key
// provider, one random 256-bit data key (DEK) per patient compartment, sealing
// and opening of resource bodies, blind-index keys, and KEK rotation.
//
// What it guarantees:
//
//   - A sealed body is AES-256-GCM ciphertext whose associated data names the
//     resource type, id, version and patient compartment (AAD). A body moved to
//     another row, version or patient, or altered in any bit, does not open:
//     Open returns ErrDecrypt and never partial plaintext.
//   - DEKs are stored only wrapped by a KEK (KeyStore holds WrappedKey rows).
//     The wrapping is bound to the compartment, so a wrapped key copied to
//     another compartment does not unwrap.
//   - When the key provider cannot be reached, operations fail with an error
//     wrapping ErrUnavailable; nothing falls back to plaintext.
//   - KEK rotation (Rewrap) rewraps DEKs only; sealed data is not re-encrypted
//     and stays readable throughout, across processes sharing one KeyStore.
//   - Blind indexes are HMAC-SHA256 under a key derived per (resource type,
//     search parameter) from one root key, truncated to 128 bits.
//   - Ledger pseudonyms (Pseudonyms) are HMAC-SHA256 under another key
//     derived from the same root, truncated to 128 bits: the audit ledger
//     records them in place of values an unproven caller chose. Their key
//     does not print.
//   - Key types (IndexKey, MACKey) do not print, cannot be compared with ==,
//     and compare in constant time.
//   - Every rotating key (Kind) is kept as generations with their creation
//     time (Generations, Ages); a rotation adds a generation and keeps what
//     still verifies or decrypts older material (retired token keys' public
//     keys, every backup root), and destroys retired signing keys' private
//     keys.
//
// Limits: nonces are random 96-bit values, so one data key should seal
// fewer than 2^32 bodies (far beyond one patient's record; the shared key ""
// is the one to watch). Blind indexes reveal equality of values within one
// (type, parameter), by design.
//
// What it does not do: it does not normalise index values (callers do), it
// does not delete wrapped keys (erasure deletes the KeyStore row and then
// calls Keyring.Evict), and it cannot make a *DataKey already handed to a
// caller forget its key. Unwrapped DEKs live in process memory, bounded in
// number and time by Config.CacheSize and Config.CacheTTL.
package keys

import (
	"context"
	"errors"
)

// Errors callers branch on.
var (
	// ErrUnavailable wraps I/O, HSM and network failures of a key provider or
	// key file. Callers answer 503; they never fall back to plaintext.
	ErrUnavailable = errors.New("keys: key provider unavailable")
	// ErrDecrypt is an authentication failure opening a sealed body or
	// unwrapping a data key: the input was tampered with, moved to another
	// place, or sealed under another key.
	ErrDecrypt = errors.New("keys: decryption failed")
	// ErrKeyNotFound is returned (possibly wrapped) by KeyStore.LoadKey when a
	// compartment has no data key yet.
	ErrKeyNotFound = errors.New("keys: data key not found")
	// ErrKeyConflict is returned (possibly wrapped) by KeyStore.ReplaceKey when
	// the stored key is no longer the expected old one.
	ErrKeyConflict = errors.New("keys: data key changed concurrently")
	// ErrPassphrase means a sealed key file could not be opened: the
	// passphrase is wrong or missing, or the sealed part is corrupted.
	ErrPassphrase = errors.New("keys: wrong passphrase for key file")
	// ErrErased: the compartment was erased; its data key is destroyed and
	// no new one is made for it.
	ErrErased = errors.New("keys: the compartment was erased")
)

// KEKProvider holds key-encryption keys and wraps data keys under them. The
// local key file implements it; PKCS#11 HSMs and KMSs can implement it too.
// Implementations are safe for concurrent use.
type KEKProvider interface {
	// Wrap encrypts a data key under the provider's current KEK, bound to
	// aad; it returns the KEK id used.
	Wrap(ctx context.Context, dek, aad []byte) (wrapped []byte, kekID string, err error)
	// Unwrap reverses Wrap. An unknown kekID, a different aad or any
	// tampering is an error.
	Unwrap(ctx context.Context, wrapped []byte, kekID string, aad []byte) ([]byte, error)
	// CurrentKEK names the KEK that Wrap uses now.
	CurrentKEK() string
}

// WrappedKey is a compartment's data key wrapped by the KEK named KEKID.
type WrappedKey struct {
	Compartment string
	KEKID       string
	Wrapped     []byte
}

// KeyStore stores wrapped data keys, one per compartment. Implementations
// are safe for concurrent use, also by several processes sharing one store.
type KeyStore interface {
	// LoadKey returns the compartment's wrapped key, or an error for which
	// errors.Is(err, ErrKeyNotFound) holds when there is none.
	LoadKey(ctx context.Context, compartment string) (WrappedKey, error)
	// CreateKey stores k unless its compartment already has a key, and
	// returns the key stored afterwards: k, or the one that won the race.
	CreateKey(ctx context.Context, k WrappedKey) (WrappedKey, error)
	// ListKeys calls fn for every stored key; an error from fn stops the
	// listing and is returned.
	ListKeys(ctx context.Context, fn func(WrappedKey) error) error
	// ReplaceKey replaces old by new if the stored key still equals old
	// (KEKID and Wrapped); otherwise it returns an error wrapping
	// ErrKeyConflict.
	ReplaceKey(ctx context.Context, old, new WrappedKey) error
}
