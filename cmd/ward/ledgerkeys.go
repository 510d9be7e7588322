package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// ledgerKeys is the ledger's checkpoint keys as the key file holds them:
// the chain from the first ledger key through the transitions recorded
// since, and the signer of the key in force. It re-reads the key file
// when it changed, so that every process follows a rotation made by
// another (audit.Keys).
type ledgerKeys struct {
	origin string
	kf     *keys.LocalFile
}

// LedgerKeys implements audit.Keys. The signer is nil when the key file
// does not hold the private key in force.
func (k ledgerKeys) LedgerKeys() (*ledger.KeyChain, *ledger.Signer, error) {
	first, transitions, key, err := k.kf.LedgerChain()
	if err != nil {
		return nil, nil, err
	}
	vkey, err := note.NewEd25519VerifierKey(k.origin, first)
	if err != nil {
		return nil, nil, fmt.Errorf("the ledger's first key: %w", err)
	}
	chain, err := ledger.OpenKeyChain(vkey, transitions)
	if err != nil {
		return nil, nil, fmt.Errorf("the key file's ledger key transitions do not verify: %w", err)
	}
	if key == nil {
		return chain, nil, nil
	}
	signer, err := ledger.NewSigner(k.origin, key)
	if err != nil {
		return nil, nil, err
	}
	if signer.KeyHash() != chain.Current().KeyHash() {
		return nil, nil, errors.New("the key file's ledger key in force is not the one its transitions lead to")
	}
	return chain, signer, nil
}

// signer returns the signer of the key in force, or an error saying why
// this process cannot sign.
func (k ledgerKeys) signer() (*ledger.Signer, error) {
	_, s, err := k.LedgerKeys()
	if err == nil && s == nil {
		err = errors.New("the key file does not hold the ledger key in force")
	}
	return s, err
}

// chain returns the key chain.
func (k ledgerKeys) chain() (*ledger.KeyChain, error) {
	c, _, err := k.LedgerKeys()
	return c, err
}

// openLedgerKeys reads the ledger's keys from the key file, under the
// origin the stored checkpoints use.
func openLedgerKeys(ctx context.Context, st *storage, db store.Store) (ledgerKeys, error) {
	origin, err := ledgerOrigin(ctx, db)
	if err != nil {
		return ledgerKeys{}, err
	}
	kf, err := st.openKeys()
	if err != nil {
		return ledgerKeys{}, err
	}
	return ledgerKeys{origin: origin, kf: kf}, nil
}

// verifierChain is the key chain an offline verifier follows: from the
// key file by default; with vkey, from that first key, through the
// transitions of the key chain document in chainFile when given (as
// GET /ledger/keys serves it).
func verifierChain(ctx context.Context, st *storage, db store.Store, vkey, chainFile string) (*ledger.KeyChain, error) {
	if chainFile != "" {
		b, err := os.ReadFile(chainFile) // #nosec G304 G703 -- a path the operator gives on the command line; the CLI runs with the operator's rights
		if err != nil {
			return nil, err
		}
		c, err := ledger.ParseKeyChain(b, vkey)
		if err != nil {
			return nil, fmt.Errorf("--key-chain: %w", err)
		}
		return c, nil
	}
	if vkey != "" {
		c, err := ledger.OpenKeyChain(vkey, nil)
		if err != nil {
			return nil, usagef("--vkey: %v", err)
		}
		return c, nil
	}
	lk, err := openLedgerKeys(ctx, st, db)
	if err != nil {
		return nil, err
	}
	return lk.chain()
}

// rotateLedger makes a new ledger checkpoint key and puts it in force
// by a key transition, while servers run or not:
//
//  1. the key file gets the new key in state pending (a rerun after a
//     crash takes the pending key up again);
//  2. under the ledger lock, the transition entry (ledger.TransitionAction,
//     the new key as its detail) is appended, unless an earlier run did:
//     the append is serialised like any other, so with several processes
//     on one database the transition is recorded once;
//  3. the key in force signs the transition note from the tree size above
//     that entry; the key file puts the new key in force with it and
//     destroys the old private key.
//
// Checkpointers never sign over a transition entry whose note is not in
// the key file yet (audit.ErrTransitionPending), and sign from its tree
// size with the new key only: the checkpoints covering the entry vouch
// for the transition.
func rotateLedger(ctx context.Context, st *storage, kf *keys.LocalFile, db store.Store, stdout io.Writer) error {
	origin, err := ledgerOrigin(ctx, db)
	if err != nil {
		return err
	}
	lk := ledgerKeys{origin: origin, kf: kf}
	chain, old, err := lk.LedgerKeys()
	if err != nil {
		return err
	}
	if old == nil {
		return errors.New("the key file does not hold the ledger key in force, which must sign the transition")
	}
	// The ledger key stays in the key file with an HSM too (README,
	// Keys in an HSM): the new one is drawn there.
	g, err := kf.BeginLedgerRotation(ctx, keys.SigningKey{})
	if err != nil {
		return err
	}
	key := kf.Signer(keys.KindLedger, g.ID)
	if key == nil {
		return fmt.Errorf("the key file does not hold the pending ledger key %s", g.ID)
	}
	next, err := ledger.NewSigner(origin, key)
	if err != nil {
		return err
	}
	index, err := recordTransition(ctx, db, chain, next.VerifierKey(), g.ID)
	if err != nil {
		return fmt.Errorf("recording the ledger key transition (rerun to complete it): %w", err)
	}
	from, err := finishTransition(ctx, kf, lk, old, g.ID, next, index)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "current ledger key: %s\nverifier key: %s\ncheckpoints from tree size %d are signed by it; entry %d records the transition, signed by the previous key\n"+
		"verifiers follow the key chain (GET /ledger/keys, ward audit verify): give outside verifiers the new key chain\n", g.ID, next.VerifierKey(), from, index)
	if st.hsm.usesHSM() {
		fmt.Fprintln(stdout, "the ledger key is the key file's, with --key-provider pkcs11 too: it is not an HSM object")
	}
	return nil
}

// finishTransition signs the transition to next from the tree size above
// its entry at index with the key in force (old), and puts next in force
// in the key file. Another run that completed the same transition first
// (replicas rotating at once) is success.
func finishTransition(ctx context.Context, kf *keys.LocalFile, lk ledgerKeys, old *ledger.Signer, id string, next *ledger.Signer, index int64) (int64, error) {
	t := ledger.Transition{Origin: lk.origin, From: index + 1, NextKey: next.VerifierKey()}
	msg, err := old.SignTransition(t)
	if err != nil {
		return 0, err
	}
	if err := kf.CompleteLedgerRotation(ctx, id, t.From, msg); err != nil {
		c, cerr := lk.chain()
		if cerr != nil || c.Current().KeyHash() != next.KeyHash() || c.Transitions()[len(c.Transitions())-1].From != t.From {
			return 0, fmt.Errorf("completing the ledger key transition (rerun to complete it): %w", err)
		}
	}
	return t.From, nil
}

// recordTransition appends the ledger entry that records the transition
// to nextKey, or finds the one an earlier run appended, and returns its
// index. It runs under the ledger lock, so that of several runs at once
// one appends and the others find its entry. An entry can only be at or
// after the latest checkpoint: no checkpoint is signed over a transition
// entry before its note is in the key file.
func recordTransition(ctx context.Context, db store.Store, chain *ledger.KeyChain, nextKey, id string) (int64, error) {
	host, _ := os.Hostname()
	rec, err := audit.NewRecord(ledger.Entry{
		Time: time.Now().UTC(), Actor: localActor(), Client: "ward-cli", Source: host,
		Action: ledger.TransitionAction, ResourceType: "LedgerKey", ResourceID: id, Outcome: "success", Detail: nextKey,
	})
	if err != nil {
		return 0, err
	}
	index := int64(-1)
	err = store.ReadWrite(ctx, db, func(tx store.Tx) error {
		size, err := tx.LockLedger(ctx)
		if err != nil {
			return err
		}
		from, _, err := tx.LatestCheckpoint(ctx)
		if errors.Is(err, store.ErrNotFound) {
			from = 0
		} else if err != nil {
			return err
		}
		const batch = 4096
		for start := from; start < size; start += batch {
			rows, err := tx.LedgerEntries(ctx, start, min(start+batch, size))
			if err != nil {
				return err
			}
			for _, r := range rows {
				e, err := ledger.DecodeEntry(r.Entry)
				if err != nil {
					return fmt.Errorf("ledger entry %d: %w", r.Index, err)
				}
				switch {
				case e.Action != ledger.TransitionAction || chain.Recorded(r.Index):
				case e.Detail == nextKey:
					index = r.Index
					return nil
				default:
					return fmt.Errorf("ledger entry %d records a transition to another key that is not complete: the key file does not match the ledger", r.Index)
				}
			}
		}
		recs := []audit.Record{rec}
		if err := audit.AppendInTx(ctx, tx, recs); err != nil {
			return err
		}
		index = recs[0].Index
		return nil
	})
	return index, err
}

// firstKeyOf returns the verifier key of the ledger's first key, which
// outside verifiers start the key chain from.
func firstKeyOf(k ledgerKeys) string {
	c, err := k.chain()
	if err != nil {
		return ""
	}
	return c.FirstKey()
}

// currentLedgerKey is a note.Verifier of the ledger key in force, asked
// at each use: for the incident scope, which opens the latest checkpoint.
// Right after a rotation, until the first checkpoint under the new key is
// signed (within a second), the latest checkpoint is the old key's and
// does not open under it: the scope then fails and is asked again.
type currentLedgerKey struct{ k ledgerKeys }

func (c currentLedgerKey) current() note.Verifier {
	chain, err := c.k.chain()
	if err != nil {
		return nil
	}
	return chain.Current()
}

func (c currentLedgerKey) Name() string { return c.k.origin }

func (c currentLedgerKey) KeyHash() uint32 {
	if v := c.current(); v != nil {
		return v.KeyHash()
	}
	return 0
}

func (c currentLedgerKey) Verify(msg, sig []byte) bool {
	v := c.current()
	return v != nil && v.Verify(msg, sig)
}
