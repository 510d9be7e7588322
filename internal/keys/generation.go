package keys

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind names one kind of key Ward rotates.
type Kind string

// The kinds of keys, as `ward keys status` and `ward keys rotate --kind`
// name them.
const (
	KindKEK    Kind = "kek"    // key-encryption keys: wrap the data keys
	KindIndex  Kind = "index"  // blind-index root: keys the search index of identifying values
	KindToken  Kind = "token"  // signs access and id tokens
	KindLedger Kind = "ledger" // signs ledger checkpoints
	KindBackup Kind = "backup" // root of the backup encryption keys
	KindESign  Kind = "esign"  // signs electronic signatures (21 CFR Part 11)
)

// Kinds lists every kind, in the order status shows them.
var Kinds = []Kind{KindKEK, KindIndex, KindToken, KindLedger, KindBackup, KindESign}

// ParseKind reads a kind's name.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("keys: unknown key kind %q (want one of kek, index, token, ledger, backup, esign)", s)
}

// Generation states. A generation without a state is in use.
const (
	// stateAnnounced: an index generation that searches compute already
	// but writes do not use yet, so that every process can find what any
	// other writes once writes switch to it.
	stateAnnounced = "announced"
	// stateReindexing: an index generation that writes use while the
	// stored index rows are rewritten under it; the older generations
	// still answer searches.
	stateReindexing = "reindexing"
	// statePending: a ledger key made but not in force yet: no checkpoint
	// is signed while one exists (the transition is being recorded).
	statePending = "pending"
)

// generation is one generation of a rotating key.
type generation struct {
	ID      string `json:"id"`
	Created int64  `json:"created"` // unix seconds
	// Estimated marks a creation time that is not known: a version 1
	// key file recorded none, and the upgrade put in its own time.
	Estimated bool `json:"created_estimated,omitempty"`
	// Secret is the key itself (a 32-byte root or Ed25519 seed) when the
	// key file holds it; HSMLabel names the key object in the HSM when
	// the HSM does.
	Secret   []byte `json:"secret,omitempty"`
	HSMLabel string `json:"hsm_label,omitempty"`
	// Public is a signing key's Ed25519 public key, kept after the
	// private key retires so that what it signed keeps verifying.
	Public []byte `json:"public,omitempty"`
	// Retired is when a later generation replaced this one (unix
	// seconds); 0 while current.
	Retired int64  `json:"retired,omitempty"`
	State   string `json:"state,omitempty"`
	// Ledger: the tree size from which this key signs checkpoints, and
	// the transition note, signed by the previous key, that says so.
	From       int64  `json:"from,omitempty"`
	Transition []byte `json:"transition,omitempty"`
	// Index: where the re-index under this generation has got to.
	Progress *reindexProgress `json:"progress,omitempty"`
}

// reindexProgress is the cursor of a re-index, so that it resumes.
type reindexProgress struct {
	Started   int64  `json:"started"` // unix seconds
	AfterType string `json:"after_type,omitempty"`
	AfterID   string `json:"after_id,omitempty"`
	Done      int64  `json:"done"`
	Pass      int    `json:"pass"`
}

// signing reports whether a kind's keys are Ed25519 signing keys.
func (k Kind) signing() bool { return k == KindToken || k == KindLedger || k == KindESign }

func (s *secrets) gens(k Kind) *[]generation {
	switch k {
	case KindIndex:
		return &s.Index
	case KindToken:
		return &s.Token
	case KindLedger:
		return &s.Ledger
	case KindBackup:
		return &s.Backup
	case KindESign:
		return &s.ESign
	}
	return nil
}

func validateGenerations(k Kind, gs []generation) error {
	if len(gs) == 0 && k != KindESign {
		return fmt.Errorf("keys: key file: no %s key", k)
	}
	if len(gs) > maxGenerations {
		return fmt.Errorf("keys: key file: %d %s keys", len(gs), k)
	}
	seen := make(map[string]bool, len(gs))
	for i, g := range gs {
		switch {
		case !validKEKID(g.ID) || seen[g.ID]:
			return fmt.Errorf("keys: key file: invalid or repeated %s key id %q", k, g.ID)
		case g.Created <= 0:
			return fmt.Errorf("keys: key file: %s key %s has no creation time", k, g.ID)
		case g.HSMLabel != "" && (!k.signing() || len(g.Secret) != 0 || len(g.HSMLabel) > 32):
			return fmt.Errorf("keys: key file: %s key %s: bad HSM label", k, g.ID)
		case g.HSMLabel == "" && len(g.Secret) != 32 && !(k.signing() && g.Retired != 0 && len(g.Secret) == 0):
			// A retired signing key may keep its public key only.
			return fmt.Errorf("keys: key file: %s key %s has %d bytes, want 32", k, g.ID, len(g.Secret))
		case k.signing() && len(g.Public) != ed25519.PublicKeySize:
			return fmt.Errorf("keys: key file: %s key %s has no public key", k, g.ID)
		case !k.signing() && (len(g.Public) != 0 || g.HSMLabel != ""):
			return fmt.Errorf("keys: key file: %s key %s has a public key", k, g.ID)
		case g.From < 0 || (g.From != 0 || g.Transition != nil) && k != KindLedger:
			return fmt.Errorf("keys: key file: %s key %s: bad transition", k, g.ID)
		case g.Progress != nil && k != KindIndex:
			return fmt.Errorf("keys: key file: %s key %s: progress of a re-index", k, g.ID)
		}
		switch g.State {
		case "":
		case stateAnnounced, stateReindexing:
			if k != KindIndex || i != len(gs)-1 {
				return fmt.Errorf("keys: key file: %s key %s: state %s", k, g.ID, g.State)
			}
		case statePending:
			if k != KindLedger || i != len(gs)-1 {
				return fmt.Errorf("keys: key file: %s key %s: state %s", k, g.ID, g.State)
			}
		default:
			return fmt.Errorf("keys: key file: %s key %s: unknown state", k, g.ID)
		}
		if k.signing() && len(g.Secret) == 32 && g.HSMLabel == "" {
			pub := ed25519.NewKeyFromSeed(g.Secret).Public().(ed25519.PublicKey)
			if !pub.Equal(ed25519.PublicKey(g.Public)) {
				return fmt.Errorf("keys: key file: %s key %s: public key does not match", k, g.ID)
			}
		}
		seen[g.ID] = true
	}
	return nil
}

// fileSigningGeneration is a signing key generation held in the file.
func fileSigningGeneration(id string, seed []byte, created int64) (generation, error) {
	if len(seed) != ed25519.SeedSize {
		return generation{}, errors.New("keys: bad signing seed")
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return generation{ID: id, Created: created, Secret: append([]byte(nil), seed...), Public: []byte(pub)}, nil
}

// nextID names the generation after gs: "<kind>-<n>" with n one more
// than the largest so far.
func nextID(k Kind, gs []generation) string {
	n := 0
	for _, g := range gs {
		var m int
		if rest, ok := strings.CutPrefix(g.ID, string(k)+"-"); ok {
			if _, err := fmt.Sscanf(rest, "%d", &m); err == nil && m > n {
				n = m
			}
		}
	}
	return fmt.Sprintf("%s-%d", k, n+1)
}

// Generation describes one generation of a key, without its secret.
type Generation struct {
	Kind      Kind
	ID        string
	Created   time.Time
	Estimated bool      // the creation time is the upgrade's, not known
	Retired   time.Time // zero while current
	State     string    // "" in use; "announced", "reindexing" (index), "pending" (ledger)
	InHSM     bool      // the private key is an object in the HSM
	HSMLabel  string
	Public    ed25519.PublicKey // signing kinds
	From      int64             // ledger: first tree size it signs
	// Reindexed counts the versions an index re-index has rewritten;
	// ReindexPass is the pass it is in (1 or 2).
	Reindexed   int64
	ReindexPass int
}

func (g generation) info(k Kind) Generation {
	out := Generation{Kind: k, ID: g.ID, Created: time.Unix(g.Created, 0).UTC(), Estimated: g.Estimated,
		State: g.State, InHSM: g.HSMLabel != "", HSMLabel: g.HSMLabel, From: g.From}
	if g.Retired != 0 {
		out.Retired = time.Unix(g.Retired, 0).UTC()
	}
	if len(g.Public) > 0 {
		out.Public = slices.Clone(ed25519.PublicKey(g.Public))
	}
	if g.Progress != nil {
		out.Reindexed, out.ReindexPass = g.Progress.Done, g.Progress.Pass
	}
	return out
}

// current returns the generation in force: the last one, except an
// announced index generation or a pending ledger key, which are not in
// force yet.
func current(gs []generation) (generation, bool) {
	for i := len(gs) - 1; i >= 0; i-- {
		if gs[i].State != stateAnnounced && gs[i].State != statePending {
			return gs[i], true
		}
	}
	return generation{}, false
}
