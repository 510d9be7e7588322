package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// indexRotation is what ward keys rotate --kind index --json prints.
type indexRotation struct {
	Kind       string `json:"kind"`
	ID         string `json:"id"`
	Reindexed  int64  `json:"reindexed"`
	Unreadable int    `json:"unreadable"`
}

// rotateIndex rotates the blind-index key: it announces a new generation
// (or continues the rotation in progress), then steps the re-index to the
// end (records.Service.ReindexStep), showing progress on a terminal.
// Running servers step the same rotation in the background, so that the
// command may be interrupted: they (or the command run again) finish it.
func rotateIndex(ctx context.Context, _ *storage, kf *keys.LocalFile, db store.Store, asJSON bool, stdout, stderr io.Writer) error {
	rot, ok, err := kf.IndexRotation()
	if err != nil {
		return err
	}
	id := rot.ID
	if !ok {
		if id, err = kf.AnnounceIndex(ctx); err != nil {
			return err
		}
		if err := recordAdmin(ctx, db, "keys-rotate", "IndexKey", id, "kind=index"); err != nil {
			return err
		}
	}
	kr, err := keys.NewKeyring(kf, records.KeyStore(db), keys.Config{Rand: rand.Reader})
	if err != nil {
		return err
	}
	params, err := search.NewRegistry()
	if err != nil {
		return err
	}
	validator, err := fhir.NewValidator()
	if err != nil {
		return err
	}
	rec := records.New(records.Config{}, db, kr, kf.BlindIndex(), params, validator)
	prog := newProgress(stderr, !asJSON, "re-index under "+id)
	switch {
	case asJSON:
	case ok:
		fmt.Fprintf(stdout, "continuing the rotation to index key %s\n", id)
	default:
		fmt.Fprintf(stdout, "new index key %s announced; writes use it in %s, once every server has seen it\n", id, keys.AnnounceWait)
	}
	out := indexRotation{Kind: string(keys.KindIndex), ID: id}
	for {
		st, err := rec.ReindexStep(ctx, kf, time.Now(), 500)
		if err != nil {
			return fmt.Errorf("re-index under %s (run the command again, or let a server, finish it): %w", id, err)
		}
		out.Unreadable += st.Unreadable
		if st.Done > out.Reindexed {
			out.Reindexed = st.Done
		}
		prog.count(int(out.Reindexed), "versions")
		if st.Finished || st.ID == "" {
			break // st.ID "": another process finished it
		}
		if st.Waiting {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	prog.done()
	if err := recordAdmin(ctx, db, "keys-rotate", "IndexKey", id, fmt.Sprintf("kind=index reindexed=%d unreadable=%d", out.Reindexed, out.Unreadable)); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "current index key: %s\nre-indexed versions: %d (unreadable: %d)\nthe earlier index keys are destroyed\n", id, out.Reindexed, out.Unreadable)
	return nil
}
