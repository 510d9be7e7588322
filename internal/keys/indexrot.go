package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// A blind-index rotation goes through these steps, each a rewrite of the
// key file under its lock, so that processes sharing the file agree:
//
//  1. AnnounceIndex adds a generation in state "announced": searches
//     compute its hashes too, writes do not use it yet.
//  2. StartReindex, once every process has had time to see the
//     announcement (AnnounceWait), makes it "reindexing": writes use it,
//     and the stored index rows are rewritten under it (pass 1), then
//     the versions written since pass 1 started are rewritten again
//     (pass 2), for writes of processes that were late to see the change.
//     ReindexProgress records the cursor, so that a stopped re-index
//     resumes.
//  3. FinishReindex makes it the only generation: the older ones, and
//     their secrets, leave the key file.

// AnnounceWait is how long an announced index generation waits before
// writes use it: several times the interval at which processes look at
// the key file (blindRefresh), so that a row written under it is found
// by every process's searches.
const AnnounceWait = 10 * blindRefresh

// ErrRotationMoved reports that another process advanced the blind-index
// rotation: the caller reads IndexRotation again and continues from there.
var ErrRotationMoved = errors.New("keys: the index rotation was advanced by another process")

// IndexRotation is the state of a blind-index rotation in progress.
type IndexRotation struct {
	ID      string    // the new generation
	State   string    // "announced" or "reindexing"
	Created time.Time // when it was announced
	Cursor  ReindexCursor
}

// ReindexCursor is where a re-index has got to: the pass (1 or 2), the
// last version done in (type, id) order, and how many it rewrote.
type ReindexCursor struct {
	Pass      int
	Started   time.Time // when pass 1 started (writes used the new key from then)
	AfterType string
	AfterID   string
	Done      int64
}

// blindGensOf builds the live generations of gs, reusing the derived keys
// of prev's generations that are still there.
func blindGensOf(gs []generation, prev *blindGens) *blindGens {
	old := map[string]*blindGen{}
	if prev != nil {
		for _, g := range prev.all {
			old[g.id] = g
		}
	}
	w, _ := current(gs)
	out := &blindGens{}
	for i := len(gs) - 1; i >= 0; i-- {
		g := old[gs[i].ID]
		if g == nil {
			root, err := NewIndexKey(gs[i].Secret)
			if err != nil {
				continue // checked on load
			}
			g = newBlindGen(gs[i].ID, root)
		}
		if gs[i].ID == w.ID {
			out.write = g
			out.all = append([]*blindGen{g}, out.all...)
		} else {
			out.all = append(out.all, g)
		}
	}
	return out
}

// BlindIndex returns a BlindIndex that follows the key file's index
// generations, looking for a rotation at most once a second (Refresh
// makes it look now).
func (f *LocalFile) BlindIndex() *BlindIndex {
	return &BlindIndex{file: f, now: time.Now}
}

// IndexRotation returns the blind-index rotation in progress, if any,
// after reading the key file again if it changed.
func (f *LocalFile) IndexRotation() (IndexRotation, bool, error) {
	if err := f.refresh(); err != nil {
		return IndexRotation{}, false, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	g := f.sec.Index[len(f.sec.Index)-1]
	if g.State == "" {
		return IndexRotation{}, false, nil
	}
	r := IndexRotation{ID: g.ID, State: g.State, Created: time.Unix(g.Created, 0).UTC()}
	if p := g.Progress; p != nil {
		r.Cursor = ReindexCursor{Pass: p.Pass, Started: time.Unix(p.Started, 0).UTC(), AfterType: p.AfterType, AfterID: p.AfterID, Done: p.Done}
	}
	return r, true, nil
}

// AnnounceIndex starts a blind-index rotation: a fresh generation, in
// state announced. It refuses while another rotation is in progress.
func (f *LocalFile) AnnounceIndex(ctx context.Context) (string, error) {
	var id string
	err := f.update(ctx, func(s *secrets) error {
		if g := s.Index[len(s.Index)-1]; g.State != "" {
			return fmt.Errorf("keys: the index rotation to %s is still in progress", g.ID)
		}
		root := make([]byte, 32)
		if _, err := io.ReadFull(f.rand, root); err != nil {
			return fmt.Errorf("keys: generating index key: %w", err)
		}
		id = nextID(KindIndex, s.Index)
		s.Index = append(s.Index, generation{ID: id, Created: f.now().Unix(), Secret: root, State: stateAnnounced})
		return nil
	})
	return id, err
}

// rotating applies change to the rotation's generation id, which must be
// the last index generation and in state want; otherwise another process
// moved it, and the answer wraps ErrRotationMoved.
func (f *LocalFile) rotating(ctx context.Context, id, want string, change func(s *secrets, g *generation) error) error {
	return f.update(ctx, func(s *secrets) error {
		g := &s.Index[len(s.Index)-1]
		if g.ID != id || g.State != want {
			return ErrRotationMoved
		}
		return change(s, g)
	})
}

// StartReindex makes the announced generation id the one writes use and
// starts pass 1 of its re-index at time at. It refuses before
// AnnounceWait has passed since the announcement.
func (f *LocalFile) StartReindex(ctx context.Context, id string, at time.Time) error {
	return f.rotating(ctx, id, stateAnnounced, func(_ *secrets, g *generation) error {
		if at.Before(time.Unix(g.Created, 0).Add(AnnounceWait)) {
			return fmt.Errorf("keys: index generation %s was announced less than %s ago", id, AnnounceWait)
		}
		g.State = stateReindexing
		g.Progress = &reindexProgress{Started: at.Unix(), Pass: 1}
		return nil
	})
}

// ReindexProgress moves the re-index of generation id from cursor from to
// cursor to; it answers ErrRotationMoved when the recorded cursor is not
// from (another process got further).
func (f *LocalFile) ReindexProgress(ctx context.Context, id string, from, to ReindexCursor) error {
	if to.Pass < 1 || to.Pass > 2 || to.Done < 0 {
		return errors.New("keys: bad re-index cursor")
	}
	return f.rotating(ctx, id, stateReindexing, func(_ *secrets, g *generation) error {
		p := g.Progress
		if p == nil || p.Pass != from.Pass || p.AfterType != from.AfterType || p.AfterID != from.AfterID || p.Done != from.Done {
			return ErrRotationMoved
		}
		p.Pass, p.AfterType, p.AfterID, p.Done = to.Pass, to.AfterType, to.AfterID, to.Done
		return nil
	})
}

// FinishReindex ends the rotation to generation id: it becomes the only
// index generation, and the older ones' secrets are destroyed (removed
// from the key file). Only the key file's own copies go: a backup of the
// key file taken before still holds them.
func (f *LocalFile) FinishReindex(ctx context.Context, id string) error {
	return f.rotating(ctx, id, stateReindexing, func(s *secrets, g *generation) error {
		if g.Progress == nil || g.Progress.Pass != 2 {
			return errors.New("keys: the re-index has not finished its second pass")
		}
		done := *g
		done.State, done.Progress = "", nil
		s.Index = []generation{done}
		return nil
	})
}
