package records

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
)

// BlindKeys is the key file's side of a blind-index rotation
// (keys.LocalFile): the state and cursor live there, so that every
// process sharing the file agrees on them and a stopped re-index resumes.
type BlindKeys interface {
	IndexRotation() (keys.IndexRotation, bool, error)
	StartReindex(ctx context.Context, id string, at time.Time) error
	ReindexProgress(ctx context.Context, id string, from, to keys.ReindexCursor) error
	FinishReindex(ctx context.Context, id string) error
}

// ReindexStatus says where a blind-index rotation is after one
// ReindexStep.
type ReindexStatus struct {
	ID    string // the new generation; "" when no rotation is in progress
	State string // "announced" or "reindexing"; "" when none or finished
	Pass  int
	Done  int64 // versions rewritten under the new generation so far
	// Rewritten and Unreadable count this step's versions; an unreadable
	// one (its body does not decrypt or parse) loses its index rows.
	Rewritten, Unreadable int
	// Waiting: nothing to do yet (the announcement or the end of pass 1
	// is too recent, or this process has not seen the change yet), or
	// another process did this step; call again later.
	Waiting bool
	// Finished: this step ended the rotation; the older generations are
	// gone.
	Finished bool
}

// reindexSkew is how much earlier than the start of pass 1 a version may
// be stamped and still be rewritten by pass 2: clocks of the processes
// sharing the store may disagree by that much.
const reindexSkew = 5 * time.Minute

// ReindexStep does one step of the blind-index rotation the key file
// records, at time now: it moves an announced generation to re-indexing
// once keys.AnnounceWait has passed; rewrites the index rows of the next
// batch of current versions under the new generation (pass 1: all of
// them; pass 2, from keys.AnnounceWait after pass 1 started, those
// written since pass 1 started, by processes that were late to see the
// new key); and ends the rotation after pass 2. The cursor is recorded
// in the key file after each batch. Several processes may step the same
// rotation: the key file's lock orders them, and a batch rewritten twice
// is rewritten the same.
func (s *Service) ReindexStep(ctx context.Context, kf BlindKeys, now time.Time, batch int) (ReindexStatus, error) {
	rot, ok, err := kf.IndexRotation()
	if err != nil || !ok {
		return ReindexStatus{}, err
	}
	st := ReindexStatus{ID: rot.ID, State: rot.State, Pass: rot.Cursor.Pass, Done: rot.Cursor.Done}
	moved := func(err error) (ReindexStatus, error) {
		if errors.Is(err, keys.ErrRotationMoved) {
			st.Waiting = true
			return st, nil
		}
		return st, err
	}
	if rot.State == "announced" {
		if now.Before(rot.Created.Add(keys.AnnounceWait)) {
			st.Waiting = true
			return st, nil
		}
		if err := kf.StartReindex(ctx, rot.ID, now); err != nil {
			return moved(err)
		}
		st.State, st.Pass = "reindexing", 1
		return st, nil
	}
	if s.blind.Generation() != rot.ID {
		st.Waiting = true // this process writes under the old key still
		return st, nil
	}
	cur := rot.Cursor
	if cur.Pass == 2 && now.Before(cur.Started.Add(keys.AnnounceWait)) {
		st.Waiting = true
		return st, nil
	}
	if batch <= 0 {
		batch = 500
	}
	rows, err := s.store.CurrentVersions(ctx, cur.AfterType, cur.AfterID, batch)
	if err != nil {
		return st, storeErr(err)
	}
	if len(rows) == 0 {
		if cur.Pass == 1 {
			next := keys.ReindexCursor{Pass: 2, Started: cur.Started, Done: cur.Done}
			if err := kf.ReindexProgress(ctx, rot.ID, cur, next); err != nil {
				return moved(err)
			}
			st.Pass = 2
			return st, nil
		}
		if err := kf.FinishReindex(ctx, rot.ID); err != nil {
			return moved(err)
		}
		st.State, st.Finished = "", true
		return st, nil
	}
	since := cur.Started.Add(-reindexSkew)
	out := make([]store.Reindexed, 0, len(rows))
	for _, row := range rows {
		if cur.Pass == 2 && row.LastUpdated.Before(since) {
			continue
		}
		index, err := s.storedIndex(ctx, row)
		switch {
		case stopsMaintenance(err):
			return st, err
		case err != nil:
			st.Unreadable++
			index = nil
		}
		out = append(out, store.Reindexed{Resource: row, Index: index})
	}
	n := 0
	if len(out) > 0 {
		if n, err = s.store.ReplaceIndex(ctx, out); err != nil {
			return st, storeErr(err)
		}
	}
	last := rows[len(rows)-1]
	next := keys.ReindexCursor{Pass: cur.Pass, Started: cur.Started, AfterType: last.Type, AfterID: last.ID, Done: cur.Done + int64(n)}
	if err := kf.ReindexProgress(ctx, rot.ID, cur, next); err != nil {
		return moved(err)
	}
	st.Rewritten, st.Done = n, next.Done
	return st, nil
}

// ReindexLog receives a blind-index rotation's progress (a logger's
// method, in ward serve).
type ReindexLog func(msg string, args ...any)

// RunReindex steps the key file's blind-index rotations until ctx ends:
// batch after batch while one is re-indexing, and every poll otherwise. It
// logs the start, progress every progressEvery and the end; a failed step
// is logged and retried at the next poll. It never logs a value: only
// generation ids and counts.
func (s *Service) RunReindex(ctx context.Context, kf BlindKeys, poll time.Duration, logf ReindexLog) {
	const progressEvery = 10 * time.Second
	var lastLog time.Time
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
		for ctx.Err() == nil {
			st, err := s.ReindexStep(ctx, kf, time.Now(), 500)
			if err != nil {
				if ctx.Err() == nil {
					logf("blind-index re-index step failed; retried later", "generation", st.ID, "error", fmt.Sprint(err))
				}
				break
			}
			switch {
			case st.Finished:
				logf("blind-index rotation finished: the older generations are destroyed", "generation", st.ID, "rewritten", st.Done)
			case !st.Waiting && st.State == "reindexing" && st.Pass == 1 && st.Done == 0 && st.Rewritten == 0:
				logf("blind-index re-index started: writes use the new generation", "generation", st.ID)
			case st.Rewritten > 0 && time.Since(lastLog) >= progressEvery:
				lastLog = time.Now()
				logf("blind-index re-index progress", "generation", st.ID, "pass", st.Pass, "rewritten", st.Done, "unreadable", st.Unreadable)
			}
			if st.ID == "" || st.Waiting || st.Finished || st.State == "announced" {
				break
			}
		}
		wait.Reset(poll)
	}
}
