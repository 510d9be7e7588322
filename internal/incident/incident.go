package incident

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// Store is what scoping reads: the ledger's actor index, its stored tree
// hashes and its latest signed checkpoint. Every store.Store is one.
type Store interface {
	LedgerEntriesByActor(ctx context.Context, q store.ActorQuery) ([]store.LedgerEntry, error)
	LedgerHashes(ctx context.Context, indexes []int64) ([][store.HashSize]byte, error)
	LatestCheckpoint(ctx context.Context) (size int64, note []byte, err error)
}

// Errors callers branch on.
var (
	// ErrNoCheckpoint: the ledger has no signed checkpoint to prove
	// entries against yet.
	ErrNoCheckpoint = errors.New("incident: the ledger has no signed checkpoint yet")
	// ErrTooLarge: the actor has more entries in the window than
	// Query.MaxEntries; narrow the window.
	ErrTooLarge = errors.New("incident: too many entries for one report")
	// ErrTampered: the ledger disagrees with itself (an index row naming
	// an entry of someone else or of another time, a proof that does not
	// verify against the signed checkpoint). Run `ward audit verify`.
	ErrTampered = errors.New("incident: the ledger or its index has been tampered with")
)

// pageSize is the number of entries read and proven at a time.
const pageSize = 2000

// Query says whose activity to scope and when.
type Query struct {
	// Actor is a user or service id as entries name it in actor; or
	// Client, an OAuth2 client id as entries name it in client. Exactly
	// one is set.
	Actor, Client string
	// From and To bound the window: From <= entry time < To. Both are
	// required; Scope cuts them to the microsecond, as the store keeps
	// times.
	From, To time.Time
	// Discovered is when the breach was discovered: the notification
	// deadlines run from it. Zero: the report's generation time.
	Discovered time.Time
	// MaxEntries bounds the entries of one report (ErrTooLarge beyond);
	// 0 means no bound. A report holds each entry and its proof in
	// memory, about 1.5 KiB per entry.
	MaxEntries int
	// Progress, when not nil, is called after each page of entries with
	// the number read so far.
	Progress func(entries int)
}

// Validate checks q without reading anything.
func (q Query) Validate() error {
	switch {
	case (q.Actor == "") == (q.Client == ""):
		return errors.New("incident: exactly one of an actor and a client is required")
	case q.From.IsZero() || q.To.IsZero():
		return errors.New("incident: the window needs a start and an end")
	case !q.From.Before(q.To):
		return errors.New("incident: the window must start before it ends")
	case q.MaxEntries < 0:
		return errors.New("incident: negative MaxEntries")
	}
	return nil
}

// Scope builds the report of q from st's ledger, proving every entry the
// latest checkpoint covers against it. v is the ledger's checkpoint
// verifier (its key name is the ledger's origin); now is the generation
// time.
func Scope(ctx context.Context, st Store, v note.Verifier, q Query, now time.Time) (*Report, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	// The store keeps times to the microsecond: a bound finer than that
	// would admit an entry by its stored time that its own time leaves
	// out.
	q.From, q.To = q.From.Truncate(time.Microsecond), q.To.Truncate(time.Microsecond)
	if !q.From.Before(q.To) {
		return nil, errors.New("incident: the window must start before it ends")
	}
	size, signed, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("incident: latest checkpoint: %w", err)
	}
	cp, err := ledger.OpenCheckpoint(signed, v.Name(), note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("incident: the latest checkpoint: %w", err)
	}
	if cp.Size != size {
		return nil, fmt.Errorf("%w: the checkpoint stored for size %d commits to size %d", ErrTampered, size, cp.Size)
	}
	r := &Report{
		Format: FormatV1, Actor: q.Actor, Client: q.Client,
		From: q.From.UTC(), To: q.To.UTC(), Generated: now.UTC(),
		Checkpoint: string(signed), CheckpointSize: cp.Size,
	}
	discovered := q.Discovered
	if discovered.IsZero() {
		discovered = now
	}
	p := &prover{st: st, cp: cp, cache: map[int64]tlog.Hash{}}
	aq := store.ActorQuery{Actor: q.Actor, Client: q.Client, Since: q.From, Before: q.To, AfterIndex: -1, Count: pageSize}
	var accesses []Access
	for {
		rows, err := st.LedgerEntriesByActor(ctx, aq)
		if err != nil {
			return nil, fmt.Errorf("incident: entries: %w", err)
		}
		if q.MaxEntries > 0 && len(accesses)+len(rows) > q.MaxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrTooLarge, q.MaxEntries)
		}
		page := make([]Access, 0, len(rows))
		for _, row := range rows {
			a, err := accessOf(row.Index, row.Entry)
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d: %w", ErrTampered, row.Index, err)
			}
			if err := r.check(a); err != nil {
				return nil, fmt.Errorf("%w: the index files entry %d under this query, but %w", ErrTampered, row.Index, err)
			}
			page = append(page, a)
		}
		if err := p.prove(ctx, page); err != nil {
			return nil, err
		}
		accesses = append(accesses, page...)
		if q.Progress != nil {
			q.Progress(len(accesses))
		}
		if len(rows) < aq.Count {
			break
		}
		last := rows[len(rows)-1]
		aq.Since, aq.AfterIndex = last.Time, last.Index
	}
	r.fill(accesses, discovered.UTC())
	return r, nil
}

// prover computes inclusion proofs against one checkpoint, reading the
// stored hashes a page of proofs needs in a few queries and keeping them:
// proofs of one tree share their upper levels.
type prover struct {
	st    Store
	cp    ledger.Checkpoint
	cache map[int64]tlog.Hash
}

// maxHashesPerRead bounds the indexes of one LedgerHashes call.
const maxHashesPerRead = 1000

func (p *prover) prove(ctx context.Context, page []Access) error {
	// First pass: which stored hashes the proofs need. tlog asks for all
	// of one proof's hashes in one call; answering with zeros records the
	// indexes without computing anything that matters.
	var need []int64
	record := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		for _, x := range indexes {
			if _, ok := p.cache[x]; !ok {
				need = append(need, x)
			}
		}
		return make([]tlog.Hash, len(indexes)), nil
	})
	for _, a := range page {
		if a.Index < p.cp.Size {
			if _, err := tlog.ProveRecord(p.cp.Size, a.Index, record); err != nil {
				return fmt.Errorf("incident: proof of entry %d: %w", a.Index, err)
			}
		}
	}
	slices.Sort(need)
	need = slices.Compact(need)
	for len(need) > 0 {
		part := need[:min(len(need), maxHashesPerRead)]
		need = need[len(part):]
		hs, err := p.st.LedgerHashes(ctx, part)
		if err != nil {
			return fmt.Errorf("incident: tree hashes: %w", err)
		}
		for i, x := range part {
			p.cache[x] = hs[i]
		}
	}
	cached := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			h, ok := p.cache[x]
			if !ok {
				return nil, fmt.Errorf("incident: tree hash %d was not read", x)
			}
			out[i] = h
		}
		return out, nil
	})
	for i := range page {
		a := &page[i]
		if a.Index >= p.cp.Size {
			continue
		}
		proof, err := tlog.ProveRecord(p.cp.Size, a.Index, cached)
		if err != nil {
			return fmt.Errorf("incident: proof of entry %d: %w", a.Index, err)
		}
		if err := ledger.VerifyInclusion(p.cp, a.Index, ledger.LeafHash([]byte(a.Entry)), proof); err != nil {
			return fmt.Errorf("%w: %w", ErrTampered, err)
		}
		a.Proof = Proof(proof)
	}
	return nil
}

// ParseInstant reads a window bound or discovery time as people write
// them: an RFC 3339 instant, or a date (YYYY-MM-DD, midnight UTC).
func ParseInstant(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("incident: %q is neither an RFC 3339 instant nor a date (YYYY-MM-DD)", s)
	}
	return t.UTC(), nil
}

// ParseQuery reads a query from URL parameters, for an HTTP endpoint such
// as GET /admin/incidents/scope?actor=&from=&to=: actor or client, from
// and to (required), discovered (optional), each given at most once, and
// nothing else. The result is validated; MaxEntries and Progress are the
// caller's to set.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	for k, vs := range v {
		if len(vs) != 1 {
			return Query{}, fmt.Errorf("incident: parameter %q given %d times", k, len(vs))
		}
		var err error
		switch val := vs[0]; k {
		case "actor":
			q.Actor = val
		case "client":
			q.Client = val
		case "from":
			q.From, err = ParseInstant(val)
		case "to":
			q.To, err = ParseInstant(val)
		case "discovered":
			q.Discovered, err = ParseInstant(val)
		default:
			return Query{}, fmt.Errorf("incident: unknown parameter %q", k)
		}
		if err != nil {
			return Query{}, err
		}
	}
	return q, q.Validate()
}
