package keys

import (
	"context"
	"errors"
)

// KEKOwner is a KEK provider that recognises the ids of its own KEKs, so
// that a provider that moves Ward from one key provider to another
// (Moving) knows which of the two unwraps a given data key.
type KEKOwner interface {
	KEKProvider
	// OwnsKEK reports whether kekID names one of this provider's KEKs.
	// It decides by the id alone and does no I/O.
	OwnsKEK(kekID string) bool
}

// Moving returns the provider that moves Ward from the key provider from
// to the key provider to (from the key file to an HSM, say): it wraps
// under to's current KEK, unwraps a data key with to when to owns its KEK
// id and with from otherwise. Run Keyring.Rewrap over it and every data
// key ends up wrapped by to; from can then be retired.
//
// It never falls back: when to cannot be reached, Wrap fails (wrapping
// ErrUnavailable) instead of wrapping under from, and a key that to owns is
// never handed to from.
func Moving(to KEKOwner, from KEKProvider) (KEKProvider, error) {
	if to == nil || from == nil {
		return nil, errors.New("keys: moving between key providers needs both")
	}
	return &moving{to: to, from: from}, nil
}

type moving struct {
	to   KEKOwner
	from KEKProvider
}

func (m *moving) Wrap(ctx context.Context, dek, aad []byte) ([]byte, string, error) {
	return m.to.Wrap(ctx, dek, aad)
}

func (m *moving) Unwrap(ctx context.Context, wrapped []byte, kekID string, aad []byte) ([]byte, error) {
	if m.to.OwnsKEK(kekID) {
		return m.to.Unwrap(ctx, wrapped, kekID, aad)
	}
	return m.from.Unwrap(ctx, wrapped, kekID, aad)
}

func (m *moving) CurrentKEK() string { return m.to.CurrentKEK() }
