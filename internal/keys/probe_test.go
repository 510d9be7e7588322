package keys_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
)

// probeProvider is a provider whose unwrap can fail or lie.
type probeProvider struct {
	keys.KEKProvider
	down, lie bool
}

func (p *probeProvider) Unwrap(ctx context.Context, w []byte, id string, aad []byte) ([]byte, error) {
	if p.down {
		return nil, keys.ErrUnavailable
	}
	dek, err := p.KEKProvider.Unwrap(ctx, w, id, aad)
	if p.lie && err == nil {
		dek[0] ^= 1
	}
	return dek, err
}

// D4 for readiness: Probe passes with a working key file and fails, with
// the provider's error kind, when unwrap fails or returns another key.
func TestProbe(t *testing.T) {
	f, _ := newLocal(t, nil)
	p := &probeProvider{KEKProvider: f}
	if err := keys.Probe(context.Background(), p); err != nil {
		t.Fatalf("probe of a working key file: %v", err)
	}
	p.down = true
	if err := keys.Probe(context.Background(), p); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("probe of an unreachable provider: %v, want ErrUnavailable", err)
	}
	p.down, p.lie = false, true
	if err := keys.Probe(context.Background(), p); !errors.Is(err, keys.ErrDecrypt) {
		t.Fatalf("probe of a provider that returns another key: %v, want ErrDecrypt", err)
	}
	p.lie = false
	if err := keys.Probe(context.Background(), p); err != nil {
		t.Fatalf("probe after recovery: %v", err)
	}
}
