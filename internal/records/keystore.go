package records

import (
	"context"
	"errors"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
)

// KeyStore adapts the storage contract's wrapped-key table to the keyring's
// KeyStore interface.
func KeyStore(st store.Keys) keys.KeyStore { return keyStore{st} }

type keyStore struct{ st store.Keys }

func toKeys(k store.WrappedKey) keys.WrappedKey {
	return keys.WrappedKey{Compartment: k.Compartment, KEKID: k.KEKID, Wrapped: k.Wrapped}
}

func toStore(k keys.WrappedKey) store.WrappedKey {
	return store.WrappedKey{Compartment: k.Compartment, KEKID: k.KEKID, Wrapped: k.Wrapped}
}

func (a keyStore) LoadKey(ctx context.Context, compartment string) (keys.WrappedKey, error) {
	k, err := a.st.LoadKey(ctx, compartment)
	if errors.Is(err, store.ErrNotFound) {
		return keys.WrappedKey{}, keys.ErrKeyNotFound
	}
	return toKeys(k), err
}

func (a keyStore) CreateKey(ctx context.Context, k keys.WrappedKey) (keys.WrappedKey, error) {
	got, err := a.st.CreateKey(ctx, toStore(k))
	return toKeys(got), err
}

func (a keyStore) ListKeys(ctx context.Context, fn func(keys.WrappedKey) error) error {
	return a.st.ListKeys(ctx, func(k store.WrappedKey) error { return fn(toKeys(k)) })
}

func (a keyStore) ReplaceKey(ctx context.Context, old, new keys.WrappedKey) error {
	return a.st.ReplaceKey(ctx, toStore(old), toStore(new))
}
