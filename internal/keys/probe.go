package keys

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
)

// probeAAD binds a probe's wrapped key to its purpose: it unwraps as
// nothing else.
const probeAAD = "ward/readiness-probe"

// Probe checks that a key provider can wrap and unwrap now: it wraps a
// fresh random key under the current KEK and unwraps it again. It stores
// nothing and touches no data key. A failure wraps ErrUnavailable when
// the provider could not be reached, ErrDecrypt when the round trip did
// not give the key back.
func Probe(ctx context.Context, p KEKProvider) error {
	var dek [32]byte
	if _, err := rand.Read(dek[:]); err != nil {
		return fmt.Errorf("keys: probe: %w", err)
	}
	wrapped, id, err := p.Wrap(ctx, dek[:], []byte(probeAAD))
	if err != nil {
		return fmt.Errorf("keys: probe: wrap: %w", err)
	}
	got, err := p.Unwrap(ctx, wrapped, id, []byte(probeAAD))
	if err != nil {
		return fmt.Errorf("keys: probe: unwrap: %w", err)
	}
	if subtle.ConstantTimeCompare(got, dek[:]) != 1 {
		return fmt.Errorf("keys: probe: unwrap gave another key: %w", ErrDecrypt)
	}
	return nil
}
