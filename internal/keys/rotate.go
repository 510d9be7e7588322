package keys

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// DefaultMaxAge is the age past which a key is reported as due for
// rotation, unless MaxAges says otherwise for its kind.
const DefaultMaxAge = 365 * 24 * time.Hour

// MaxAges is the maximum age of each kind's key in force; a kind missing
// from it gets DefaultMaxAge, and 0 means no maximum.
type MaxAges map[Kind]time.Duration

func (m MaxAges) of(k Kind) time.Duration {
	if d, ok := m[k]; ok {
		return d
	}
	return DefaultMaxAge
}

// KeyAge is the age of the key in force of one kind.
type KeyAge struct {
	Kind      Kind          `json:"kind"`
	ID        string        `json:"id"`
	Created   time.Time     `json:"created"`
	Estimated bool          `json:"created_estimated,omitempty"`
	Age       time.Duration `json:"age_ns"`
	MaxAge    time.Duration `json:"max_age_ns"`
	// Over reports a key older than its kind's maximum age: due for
	// rotation. It does not stop anything.
	Over bool `json:"over_max_age"`
	// Generations counts the generations the key file keeps (older ones
	// verify or decrypt what they made).
	Generations int  `json:"generations"`
	InHSM       bool `json:"in_hsm,omitempty"`
}

// Ages reports the age of the key in force of every kind the key file
// knows, in the order of Kinds: the report behind `ward keys status`,
// the key-age gauges and a compliance report. currentKEK names the KEK in
// force when another provider (an HSM) holds it; "" means the file's. A
// kind without a key (esign before its first key) is left out.
func (f *LocalFile) Ages(now time.Time, max MaxAges, currentKEK string) []KeyAge {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []KeyAge
	for _, k := range Kinds {
		var g Generation
		n := 0
		if k == KindKEK {
			id := currentKEK
			if id == "" {
				id = f.sec.Current
			}
			g, n = f.kekInfo(id), len(f.sec.KEKs)
		} else {
			gs := *f.sec.gens(k)
			cur, ok := current(gs)
			if !ok {
				continue
			}
			g, n = cur.info(k), len(gs)
		}
		a := KeyAge{Kind: k, ID: g.ID, Created: g.Created, Estimated: g.Estimated, MaxAge: max.of(k), Generations: n, InHSM: g.InHSM}
		if !g.Created.IsZero() {
			a.Age = max0(now.Sub(g.Created))
		}
		a.Over = a.MaxAge > 0 && a.Age > a.MaxAge
		out = append(out, a)
	}
	return out
}

func max0(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// SigningKey is a new signing key for RotateSigning: one the HSM holds
// (its object label and public key), or, when zero, one the key file
// draws and holds itself.
type SigningKey struct {
	HSMLabel string
	Public   ed25519.PublicKey
}

// RotateSigning makes a new generation of a signing kind's key (token,
// esign) current and returns it. The one it replaces is marked retired
// now; it keeps verifying (its public key stays in the file). Retired
// generations whose retirement is older than forget are dropped (forget
// <= 0 keeps them all): for tokens, the longest a token lives, after
// which nothing the key signed is accepted anyway. The private keys of
// retired generations that the file held are destroyed. Ledger keys rotate
// with BeginLedgerRotation instead: their change is recorded in the
// ledger.
func (f *LocalFile) RotateSigning(ctx context.Context, k Kind, key SigningKey, forget time.Duration) (Generation, error) {
	if k != KindToken && k != KindESign {
		return Generation{}, fmt.Errorf("keys: %s keys do not rotate this way", k)
	}
	var out Generation
	err := f.update(ctx, func(s *secrets) error {
		g, err := f.newSigningGeneration(k, *s.gens(k), key)
		if err != nil {
			return err
		}
		now := f.now()
		gs := s.gens(k)
		retireAll(*gs, now)
		for i := range *gs {
			// A retired key signs nothing more: its private key goes.
			clear((*gs)[i].Secret)
			(*gs)[i].Secret = nil
		}
		if forget > 0 {
			*gs = slices.DeleteFunc(*gs, func(o generation) bool {
				return o.Retired != 0 && now.Sub(time.Unix(o.Retired, 0)) > forget
			})
		}
		*gs = append(*gs, g)
		out = g.info(k)
		return nil
	})
	return out, err
}

// retireAll marks the generations not yet retired as retired at now.
func retireAll(gs []generation, now time.Time) {
	for i := range gs {
		if gs[i].Retired == 0 {
			gs[i].Retired = now.Unix()
		}
	}
}

func (f *LocalFile) newSigningGeneration(k Kind, gs []generation, key SigningKey) (generation, error) {
	id := nextID(k, gs)
	if key.HSMLabel != "" {
		if len(key.Public) != ed25519.PublicKeySize {
			return generation{}, errors.New("keys: an HSM signing key needs its Ed25519 public key")
		}
		return generation{ID: id, Created: f.now().Unix(), HSMLabel: key.HSMLabel, Public: slices.Clone(key.Public)}, nil
	}
	seed := make([]byte, ed25519.SeedSize)
	defer clear(seed)
	if _, err := io.ReadFull(f.rand, seed); err != nil {
		return generation{}, fmt.Errorf("keys: generating a %s key: %w", k, err)
	}
	return fileSigningGeneration(id, seed, f.now().Unix())
}

// Signer returns the signer of one generation of a signing kind when
// the key file holds its private key; nil when the HSM holds it (sign
// through the HSM's object, Generation.HSMLabel) or when it is retired
// and its private key gone. The private key stays inside package keys.
func (f *LocalFile) Signer(k Kind, id string) crypto.Signer {
	f.mu.RLock()
	defer f.mu.RUnlock()
	gs := f.sec.gens(k)
	if gs == nil || !k.signing() {
		return nil
	}
	for _, g := range *gs {
		if g.ID == id && len(g.Secret) == ed25519.SeedSize {
			return newEd25519Signer(string(k), g.Secret)
		}
	}
	return nil
}

// TokenKeys returns the token signing generations that verify tokens at
// now: the current one, which signs, last, and those retired less than
// keep ago (keep: the longest a token lives, plus clock skew), whose
// tokens may still be in use.
func (f *LocalFile) TokenKeys(now time.Time, keep time.Duration) (accepted []Generation) {
	for _, g := range f.Generations(KindToken) {
		if g.Retired.IsZero() || now.Sub(g.Retired) < keep {
			accepted = append(accepted, g)
		}
	}
	return accepted
}

// RotateBackup makes a new backup root current: new backups are sealed
// under it. Every earlier root stays in the file, so that every backup
// made under it stays readable (its header names its root).
func (f *LocalFile) RotateBackup(ctx context.Context) (Generation, error) {
	var out Generation
	err := f.update(ctx, func(s *secrets) error {
		root := make([]byte, 32)
		if _, err := io.ReadFull(f.rand, root); err != nil {
			return fmt.Errorf("keys: generating a backup root: %w", err)
		}
		retireAll(s.Backup, f.now())
		g := generation{ID: nextID(KindBackup, s.Backup), Created: f.now().Unix(), Secret: root}
		s.Backup = append(s.Backup, g)
		out = g.info(KindBackup)
		return nil
	})
	return out, err
}

// BeginLedgerRotation adds a new ledger key in state pending and returns
// it; a pending key already there (a rotation that stopped half-way) is
// returned as it is. A pending key signs nothing: the transition to it
// is being recorded in the ledger, and no checkpoint is signed over its
// entry until CompleteLedgerRotation puts it in force (package audit
// checks the entries). Finish with CompleteLedgerRotation, or
// AbortLedgerRotation.
func (f *LocalFile) BeginLedgerRotation(ctx context.Context, key SigningKey) (Generation, error) {
	var out Generation
	err := f.update(ctx, func(s *secrets) error {
		if n := len(s.Ledger); n > 0 && s.Ledger[n-1].State == statePending {
			out = s.Ledger[n-1].info(KindLedger)
			return nil
		}
		g, err := f.newSigningGeneration(KindLedger, s.Ledger, key)
		if err != nil {
			return err
		}
		g.State = statePending
		s.Ledger = append(s.Ledger, g)
		out = g.info(KindLedger)
		return nil
	})
	return out, err
}

// CompleteLedgerRotation puts the pending ledger key id in force from
// tree size from, keeping the signed transition note that says so. The
// key it replaces is retired and, when the key file held it, its private
// key destroyed: it signs nothing any more, and its public key stays for
// the checkpoints it signed.
func (f *LocalFile) CompleteLedgerRotation(ctx context.Context, id string, from int64, transition []byte) error {
	if from < 1 || len(transition) == 0 {
		return errors.New("keys: a ledger key transition needs its tree size and note")
	}
	return f.update(ctx, func(s *secrets) error {
		n := len(s.Ledger)
		if n == 0 || s.Ledger[n-1].ID != id || s.Ledger[n-1].State != statePending {
			return fmt.Errorf("keys: ledger key %s is not pending", id)
		}
		now := f.now()
		for i := range s.Ledger[:n-1] {
			if s.Ledger[i].Retired == 0 {
				s.Ledger[i].Retired = now.Unix()
			}
			clear(s.Ledger[i].Secret)
			s.Ledger[i].Secret = nil
		}
		g := &s.Ledger[n-1]
		g.State, g.From, g.Transition = "", from, slices.Clone(transition)
		return nil
	})
}

// AbortLedgerRotation removes the pending ledger key id.
func (f *LocalFile) AbortLedgerRotation(ctx context.Context, id string) error {
	return f.update(ctx, func(s *secrets) error {
		n := len(s.Ledger)
		if n == 0 || s.Ledger[n-1].ID != id || s.Ledger[n-1].State != statePending {
			return nil
		}
		s.Ledger = s.Ledger[:n-1]
		return nil
	})
}

// LedgerTransitions returns the ledger keys' transition notes in order,
// for verifiers that follow the key from the first one.
func (f *LocalFile) LedgerTransitions() [][]byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out [][]byte
	for _, g := range f.sec.Ledger {
		if g.Transition != nil && g.State == "" {
			out = append(out, slices.Clone(g.Transition))
		}
	}
	return out
}

// LedgerChain returns, read together after re-reading the key file when
// it changed, what verifiers and the checkpoint signer need: the first
// ledger key's public key, the transition notes of the keys in force
// since, in order (a pending key's is not there yet), and the signer of
// the key in force, nil when the key file does not hold it.
func (f *LocalFile) LedgerChain() (first ed25519.PublicKey, transitions [][]byte, signer crypto.Signer, err error) {
	if err := f.refresh(); err != nil {
		return nil, nil, nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	gs := f.sec.Ledger
	if len(gs) == 0 {
		return nil, nil, nil, errors.New("keys: the key file has no ledger key")
	}
	for _, g := range gs[1:] {
		if g.State == "" {
			if len(g.Transition) == 0 {
				return nil, nil, nil, fmt.Errorf("keys: ledger key %s is in force without a transition", g.ID)
			}
			transitions = append(transitions, slices.Clone(g.Transition))
		}
	}
	if g, ok := current(gs); ok && len(g.Secret) == ed25519.SeedSize {
		signer = newEd25519Signer("ledger", g.Secret)
	}
	return slices.Clone(ed25519.PublicKey(gs[0].Public)), transitions, signer, nil
}
