package store

import (
	"context"
	"fmt"
)

// Beginner starts read-write transactions; every Store is one.
type Beginner interface {
	Begin(ctx context.Context) (Tx, error)
}

// ReadWrite runs fn in one transaction and owns its end: it commits when
// fn returns nil and rolls back when fn returns an error or panics (the
// panic goes on after the rollback). fn must not call Commit or Rollback.
// The error of fn is returned as is; a failed begin or commit is
// returned wrapped, so that errors.Is finds ErrUnavailable or
// ErrConflict.
func ReadWrite(ctx context.Context, b Beginner, fn func(Tx) error) (err error) {
	tx, err := b.Begin(ctx)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
