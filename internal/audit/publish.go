package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// Publishing puts the ledger's checkpoints where the operator's database
// administrator cannot rewrite them: a directory of write-once files
// (mounted from elsewhere, synced off the machine, or append-only), and
// C2SP tlog-witnesses, which cosign a checkpoint only if it extends the
// last one they saw. A rewritten history then shows as a published file
// or a witness that disagrees with the store.

// WitnessTarget is a tlog-witness the publisher submits checkpoints to.
type WitnessTarget struct {
	// URL is the witness's submission prefix; "/add-checkpoint" is appended.
	URL string
	// Key, if set, is the witness's cosignature key: an answer without a
	// valid cosignature by it is an error.
	Key note.Verifier
}

// PublishConfig configures a Publisher.
type PublishConfig struct {
	// Keys verify the ledger's checkpoints: the key chain, asked at each
	// publication so that a key transition is followed. Witnesses are
	// sent the chain's transitions with each checkpoint.
	Keys Keys
	// Dir, if set, receives every published checkpoint as <size>.checkpoint.
	Dir string
	// Witnesses receive every published checkpoint.
	Witnesses []WitnessTarget
	// HTTPClient calls the witnesses; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Cosigned is a checkpoint as cosigned by a witness.
type Cosigned struct {
	Witness string // the witness URL
	Size    int64
	Note    []byte // the checkpoint with the witness's signature lines
}

// Publisher publishes checkpoints of one ledger. It remembers, per
// witness, the last size the witness acknowledged, so that it sends a
// consistency proof from there; a witness's 409 answer corrects it. It is
// safe for concurrent use; publications are serialised.
type Publisher struct {
	cfg PublishConfig
	hr  ledger.HashReader

	mu        sync.Mutex
	dirDone   int64 // largest size written to Dir, -1 before the first scan
	dirLast   ledger.Checkpoint
	witnesses []*witnessProgress
}

type witnessProgress struct {
	WitnessTarget
	known int64 // the witness's latest cosigned size, as far as we know
	done  int64 // largest size the witness acknowledged from us
}

// NewPublisher validates cfg. hr reads the ledger's stored hashes (see
// [Source]), for consistency proofs.
func NewPublisher(cfg PublishConfig, hr ledger.HashReader) (*Publisher, error) {
	if cfg.Keys == nil || hr == nil {
		return nil, errors.New("audit: publisher needs the ledger's verifier and hashes")
	}
	if cfg.Dir == "" && len(cfg.Witnesses) == 0 {
		return nil, errors.New("audit: publisher has nowhere to publish")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	p := &Publisher{cfg: cfg, hr: hr, dirDone: -1}
	for _, w := range cfg.Witnesses {
		if !strings.HasPrefix(w.URL, "https://") && !strings.HasPrefix(w.URL, "http://") {
			return nil, fmt.Errorf("audit: witness URL %q is not an HTTP(S) URL", w.URL)
		}
		p.witnesses = append(p.witnesses, &witnessProgress{WitnessTarget: w, done: -1})
	}
	return p, nil
}

// Publish publishes the signed checkpoint msg of the given size to the
// directory and to every witness that has not acknowledged it (or a
// larger one) yet. It returns the cosigned checkpoints it obtained, and
// the failures joined; one target failing does not stop the others.
func (p *Publisher) Publish(ctx context.Context, size int64, msg []byte) ([]Cosigned, error) {
	chain, _, err := p.cfg.Keys.LedgerKeys()
	if err != nil {
		return nil, fmt.Errorf("audit: publish: %w", err)
	}
	c, err := chain.OpenCheckpoint(msg)
	if err != nil {
		return nil, fmt.Errorf("audit: publish: %w", err)
	}
	if c.Size != size {
		return nil, fmt.Errorf("audit: publish: checkpoint of size %d given as %d", c.Size, size)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.cfg.Dir != "" {
		if err := p.publishDir(ctx, chain, c, msg); err != nil {
			errs = append(errs, err)
		}
	}
	var out []Cosigned
	for _, w := range p.witnesses {
		if w.done >= size {
			continue
		}
		cosigned, err := p.publishWitness(ctx, w, chain, c, msg)
		if err != nil {
			errs = append(errs, fmt.Errorf("audit: witness %s: %w", w.URL, err))
			continue
		}
		if cosigned != nil {
			out = append(out, Cosigned{Witness: w.URL, Size: size, Note: cosigned})
		}
	}
	return out, errors.Join(errs...)
}

// publishWitness submits c to one witness, retrying once per 409 with a
// proof from the size the witness reports. It returns nil, nil when the
// witness already holds a larger checkpoint consistent with c.
func (p *Publisher) publishWitness(ctx context.Context, w *witnessProgress, chain *ledger.KeyChain, c ledger.Checkpoint, msg []byte) ([]byte, error) {
	for range 3 {
		if w.known > c.Size {
			// Another Ward process sharing the database got a newer
			// checkpoint cosigned; prove ours is part of it, then skip.
			if _, err := ledger.ProveConsistency(ctx, p.hr, c.Size, w.known); err != nil {
				return nil, fmt.Errorf("%w: the witness holds size %d, beyond what the ledger can prove: %w", ErrHistoryRewritten, w.known, err)
			}
			w.done = c.Size
			return nil, nil
		}
		proof, err := ledger.ProveConsistency(ctx, p.hr, w.known, c.Size)
		if err != nil {
			return nil, err
		}
		cosigned, err := ledger.AddCheckpoint(ctx, p.cfg.HTTPClient, w.URL, w.known, proof, msg, chain.Notes()...)
		var conflict *ledger.ConflictError
		switch {
		case errors.As(err, &conflict) && conflict.Size == w.known:
			return nil, fmt.Errorf("%w: the witness holds another checkpoint of size %d", ErrHistoryRewritten, conflict.Size)
		case errors.As(err, &conflict):
			w.known = conflict.Size
			continue
		case errors.Is(err, ledger.ErrProof):
			return nil, fmt.Errorf("%w: %w", ErrHistoryRewritten, err)
		case err != nil:
			return nil, err
		}
		if w.Key != nil {
			if err := requireCosignature(cosigned, chain.At(c.Size), w.Key); err != nil {
				return nil, err
			}
		}
		w.known, w.done = c.Size, c.Size
		return cosigned, nil
	}
	return nil, errors.New("audit: the witness's size kept changing; will retry")
}

// requireCosignature checks that cosigned carries a valid signature by
// the witness key.
func requireCosignature(cosigned []byte, log, key note.Verifier) error {
	n, err := note.Open(cosigned, note.VerifierList(log, key))
	if err != nil {
		return fmt.Errorf("audit: cosigned checkpoint: %w", err)
	}
	for _, s := range n.Sigs {
		if s.Name == key.Name() && s.Hash == key.KeyHash() {
			return nil
		}
	}
	return errors.New("audit: the witness answered without a cosignature by its key")
}

// publishDir writes c as <Dir>/<size>.checkpoint, once: an existing file
// of that name must hold the same bytes. Before writing, it checks that
// the ledger extends the largest checkpoint already in the directory.
func (p *Publisher) publishDir(ctx context.Context, chain *ledger.KeyChain, c ledger.Checkpoint, msg []byte) error {
	if p.dirDone < 0 {
		if err := p.scanDir(ctx, chain, c); err != nil {
			return err
		}
	}
	if c.Size < p.dirDone {
		return nil // an older checkpoint; the directory has newer ones
	}
	if p.dirDone >= 0 && c.Size > p.dirLast.Size {
		proof, err := ledger.ProveConsistency(ctx, p.hr, p.dirLast.Size, c.Size)
		if err == nil {
			err = ledger.VerifyConsistency(p.dirLast, c, proof)
		}
		if err != nil {
			return fmt.Errorf("%w: %s holds size %d: %w", ErrHistoryRewritten, p.cfg.Dir, p.dirLast.Size, err)
		}
	}
	if err := writeOnce(filepath.Join(p.cfg.Dir, strconv.FormatInt(c.Size, 10)+".checkpoint"), msg); err != nil {
		return err
	}
	p.dirDone, p.dirLast = c.Size, c
	return nil
}

// scanDir finds the largest checkpoint published in the directory and
// checks that the ledger extends it (or, if it is larger than c, that
// the ledger still holds it).
func (p *Publisher) scanDir(ctx context.Context, chain *ledger.KeyChain, c ledger.Checkpoint) error {
	if err := os.MkdirAll(p.cfg.Dir, 0o755); err != nil { // #nosec G301 -- published checkpoints are public by design: witnesses and auditors read this directory
		return fmt.Errorf("audit: publish directory: %w", err)
	}
	largest, b, err := LatestPublished(p.cfg.Dir)
	if err != nil {
		return err
	}
	if b == nil {
		p.dirDone = 0
		p.dirLast = ledger.Checkpoint{Origin: c.Origin, Size: 0}
		p.dirLast.Root, _ = ledger.TreeHash(ctx, p.hr, 0)
		return nil
	}
	name := filepath.Join(p.cfg.Dir, strconv.FormatInt(largest, 10)+".checkpoint")
	last, err := chain.OpenCheckpoint(b)
	if err != nil || last.Size != largest {
		return fmt.Errorf("audit: %s is not a checkpoint of this ledger: %v", name, err)
	}
	older, newer := last, c
	if last.Size > c.Size {
		older, newer = c, last
	}
	proof, err := ledger.ProveConsistency(ctx, p.hr, older.Size, newer.Size)
	if err == nil {
		err = ledger.VerifyConsistency(older, newer, proof)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrHistoryRewritten, name, err)
	}
	p.dirDone, p.dirLast = largest, last
	return nil
}

// writeOnce creates path with data, never replacing an existing file: the
// data goes to a new temporary file (O_EXCL), is synced and made
// read-only (0444), then is hard-linked to path, which fails if path
// exists. An existing path with the same bytes is success; with other
// bytes it is ErrHistoryRewritten.
func writeOnce(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".publish-*")
	if err != nil {
		return fmt.Errorf("audit: publish: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(0o444)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: publish: %w", err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		old, rerr := os.ReadFile(path) // #nosec G304 -- the configured publication directory and names Ward builds from checkpoint sizes
		if rerr != nil {
			return fmt.Errorf("audit: publish: %w", rerr)
		}
		if !bytes.Equal(old, data) {
			return fmt.Errorf("%w: %s already holds another checkpoint", ErrHistoryRewritten, path)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("audit: publish: %w", err)
	}
	d, err := os.Open(dir) // #nosec G304 -- the configured publication directory and names Ward builds from checkpoint sizes
	if err != nil {
		return fmt.Errorf("audit: publish: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: publish: %w", err)
	}
	return nil
}

// RunPublishing publishes the ledger's latest stored checkpoint every
// interval until ctx ends (the checkpointer, [RunCheckpoints], stores
// them). Cosignatures obtained go to onCosigned, failures to onErr; a
// failed target is retried at the next tick. The store keeps the first
// note stored per size, so cosignatures are reported, not stored. A
// published checkpoint that the ledger does not extend
// ([ErrHistoryRewritten]) stops halt, so that nothing more is signed, and
// ends the run after onErr.
func RunPublishing(ctx context.Context, st store.LedgerReader, p *Publisher, interval time.Duration, halt *Halt, onCosigned func(Cosigned), onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		size, msg, err := st.LatestCheckpoint(ctx)
		switch {
		case errors.Is(err, store.ErrNotFound) || (err == nil && size == 0):
		case err != nil:
			if ctx.Err() == nil {
				onErr(err)
			}
		default:
			cosigned, err := p.Publish(ctx, size, msg)
			for _, c := range cosigned {
				onCosigned(c)
			}
			if err != nil && ctx.Err() == nil {
				if errors.Is(err, ErrHistoryRewritten) {
					halt.Stop(err)
					onErr(err)
					return
				}
				onErr(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
