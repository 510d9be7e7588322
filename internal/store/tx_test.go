package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// fakeTx records how a transaction ended.
type fakeTx struct {
	store.Tx
	commits, rollbacks int
	commitErr          error
}

func (t *fakeTx) Commit() error   { t.commits++; return t.commitErr }
func (t *fakeTx) Rollback() error { t.rollbacks++; return nil }

type beginner struct{ tx *fakeTx }

func (b beginner) Begin(context.Context) (store.Tx, error) { return b.tx, nil }

func TestReadWrite(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name                string
		fn                  func(store.Tx) error
		commitErr           error
		commits, rollbacks  int
		wantErr, wantPanics bool
	}{
		{name: "commits", fn: func(store.Tx) error { return nil }, commits: 1},
		{name: "rolls back on error", fn: func(store.Tx) error { return boom }, rollbacks: 1, wantErr: true},
		{name: "rolls back on panic", fn: func(store.Tx) error { panic(boom) }, rollbacks: 1, wantPanics: true},
		{name: "commit fails", fn: func(store.Tx) error { return nil }, commitErr: store.ErrConflict, commits: 1, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := &fakeTx{commitErr: tc.commitErr}
			var err error
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				err = store.ReadWrite(ctx, beginner{tx}, tc.fn)
				return false
			}()
			if panicked != tc.wantPanics || (err != nil) != tc.wantErr || tx.commits != tc.commits || tx.rollbacks != tc.rollbacks {
				t.Fatalf("panicked %v, err %v, %d commits, %d rollbacks", panicked, err, tx.commits, tx.rollbacks)
			}
			if tc.commitErr != nil && !errors.Is(err, tc.commitErr) {
				t.Fatalf("commit error %v does not wrap %v", err, tc.commitErr)
			}
		})
	}
}
