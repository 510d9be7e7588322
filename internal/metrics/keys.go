package metrics

import (
	"context"
	"time"
)

const (
	opWrap   = "wrap"
	opUnwrap = "unwrap"
)

// KEKProvider is the key provider's interface (keys.KEKProvider), restated
// so that this package does not import keys.
type KEKProvider interface {
	Wrap(ctx context.Context, dek, aad []byte) (wrapped []byte, kekID string, err error)
	Unwrap(ctx context.Context, wrapped []byte, kekID string, aad []byte) ([]byte, error)
	CurrentKEK() string
}

// KEK returns p with its Wrap and Unwrap timed and their failures counted.
// It is a keys.KEKProvider; it hides p's other methods (a keyring over it
// needs its erasure register passed explicitly, keys.Config.Register).
func (m *Metrics) KEK(p KEKProvider) KEKProvider { return &timedKEK{p: p, m: m} }

type timedKEK struct {
	p KEKProvider
	m *Metrics
}

func (t *timedKEK) Wrap(ctx context.Context, dek, aad []byte) ([]byte, string, error) {
	began := time.Now()
	w, id, err := t.p.Wrap(ctx, dek, aad)
	t.m.keyOp(opWrap, began, err)
	return w, id, err
}

func (t *timedKEK) Unwrap(ctx context.Context, wrapped []byte, kekID string, aad []byte) ([]byte, error) {
	began := time.Now()
	dek, err := t.p.Unwrap(ctx, wrapped, kekID, aad)
	t.m.keyOp(opUnwrap, began, err)
	return dek, err
}

func (t *timedKEK) CurrentKEK() string { return t.p.CurrentKEK() }

func (m *Metrics) keyOp(op string, began time.Time, err error) {
	m.kek.WithLabelValues(op).Observe(time.Since(began).Seconds())
	if err != nil {
		m.kekErrors.WithLabelValues(op).Inc()
	}
}
