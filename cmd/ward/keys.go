package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/store"
)

// tokenKeyKeep is how long a retired token signing key keeps verifying:
// the longest a token lives (auth.MaxTokenTTL), the clock skew allowed,
// and the time other processes take to see a rotation.
const tokenKeyKeep = auth.MaxTokenTTL + 2*time.Minute

// maxAgeFlag is --key-max-age: "kind=duration,..." with durations in Go
// syntax or whole days ("400d"); "0" means no maximum for that kind.
type maxAgeFlag struct{ ages keys.MaxAges }

func (m *maxAgeFlag) String() string {
	if m == nil || len(m.ages) == 0 {
		return ""
	}
	var parts []string
	for _, k := range keys.Kinds {
		if d, ok := m.ages[k]; ok {
			parts = append(parts, string(k)+"="+d.String())
		}
	}
	return strings.Join(parts, ",")
}

func (m *maxAgeFlag) Set(v string) error {
	if m.ages == nil {
		m.ages = keys.MaxAges{}
	}
	for part := range strings.SplitSeq(v, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("want kind=duration, got %q", part)
		}
		var kinds []keys.Kind
		if name == "all" {
			kinds = keys.Kinds
		} else {
			k, err := keys.ParseKind(name)
			if err != nil {
				return err
			}
			kinds = []keys.Kind{k}
		}
		d, err := parseAge(val)
		if err != nil {
			return err
		}
		for _, k := range kinds {
			m.ages[k] = d
		}
	}
	return nil
}

// parseAge reads a duration, with "d" for whole days.
func parseAge(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad number of days %q", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", v)
	}
	return d, nil
}

const maxAgeUsage = "maximum age of each kind's key before it shows as due for rotation (in /readyz details, the ward_key_over_max_age gauge and ward keys status), as kind=duration pairs, e.g. token=90d,ledger=730d or all=365d; default 365d for every kind, 0 for none"

// currentKEKOf names the KEK in force for status: the HSM's when the
// keys move there.
func (h *hsmFlags) currentKEKOf() string {
	if h.usesHSM() {
		return pkcs11.KEKPrefix + h.kekLabel
	}
	return ""
}

// runKeysStatus prints each kind's key in force, its id and age.
func runKeysStatus(st *storage, ages keys.MaxAges, asJSON bool, stdout io.Writer) error {
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	report := kf.Ages(time.Now(), ages, st.hsm.currentKEKOf())
	if asJSON {
		type row struct {
			Kind        string    `json:"kind"`
			ID          string    `json:"id"`
			Created     time.Time `json:"created"`
			Estimated   bool      `json:"created_estimated"`
			AgeDays     float64   `json:"age_days"`
			MaxAgeDays  float64   `json:"max_age_days"`
			Over        bool      `json:"over_max_age"`
			Generations int       `json:"generations"`
			InHSM       bool      `json:"in_hsm"`
			State       string    `json:"state,omitempty"`
			// FromSize: the ledger key signs checkpoints from this tree
			// size, by a signed key transition (0: the first key).
			FromSize int64 `json:"from_tree_size,omitempty"`
		}
		out := struct {
			Keys []row `json:"keys"`
		}{Keys: []row{}}
		for _, a := range report {
			out.Keys = append(out.Keys, row{Kind: string(a.Kind), ID: a.ID, Created: a.Created, Estimated: a.Estimated,
				AgeDays: a.Age.Hours() / 24, MaxAgeDays: a.MaxAge.Hours() / 24, Over: a.Over, Generations: a.Generations,
				InHSM: a.InHSM, State: kindState(kf, a.Kind), FromSize: ledgerFrom(kf, a.Kind, a.ID)})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tCREATED\tAGE\tMAX AGE\tGENERATIONS\tSTATUS")
	for _, a := range report {
		created := a.Created.Format("2006-01-02")
		if a.Estimated {
			created += " (upgrade)"
		}
		status := "ok"
		if a.Over {
			status = "OVER MAX AGE: rotate"
		}
		if n := ledgerFrom(kf, a.Kind, a.ID); n > 0 {
			status += fmt.Sprintf(", signs from tree size %d", n)
		}
		if s := kindState(kf, a.Kind); s != "" {
			status += ", " + s
		}
		maxAge := "none"
		if a.MaxAge > 0 {
			maxAge = days(a.MaxAge)
		}
		where := ""
		if a.InHSM {
			where = " (HSM)"
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%s\t%s\t%d\t%s\n", a.Kind, a.ID, where, created, days(a.Age), maxAge, a.Generations, status)
	}
	return tw.Flush()
}

// kindState says what a rotation in progress is doing.
func kindState(kf *keys.LocalFile, k keys.Kind) string {
	gs := kf.Generations(k)
	if len(gs) == 0 {
		return ""
	}
	switch g := gs[len(gs)-1]; g.State {
	case "announced":
		return "rotation to " + g.ID + " announced; writes switch to it in " + keys.AnnounceWait.String()
	case "reindexing":
		return fmt.Sprintf("re-index under %s: pass %d of 2, %d versions", g.ID, g.ReindexPass, g.Reindexed)
	case "pending":
		return "transition to " + g.ID + " pending: run ward keys rotate --kind ledger"
	}
	return ""
}

// ledgerFrom returns the tree size from which the ledger key id signs
// checkpoints: 0 for the first key or another kind.
func ledgerFrom(kf *keys.LocalFile, k keys.Kind, id string) int64 {
	if k != keys.KindLedger {
		return 0
	}
	for _, g := range kf.Generations(k) {
		if g.ID == id {
			return g.From
		}
	}
	return 0
}

func days(d time.Duration) string {
	return strconv.FormatFloat(d.Hours()/24, 'f', 0, 64) + "d"
}

// rotateToken makes a new token signing key current: in the key file,
// or, with --key-provider pkcs11, a new Ed25519 key object in the HSM.
// Serving processes sign with it within seconds and keep accepting the
// tokens of the old key until they expire (tokenKeyKeep).
func rotateToken(ctx context.Context, st *storage, kf *keys.LocalFile, db store.Store, stdout io.Writer) error {
	var key keys.SigningKey
	if st.hsm.usesHSM() {
		var err error
		if key, err = st.hsm.newSigningKey(ctx, "ward-token", kf.Generations(keys.KindToken)); err != nil {
			return err
		}
	}
	g, err := kf.RotateSigning(ctx, keys.KindToken, key, tokenKeyKeep)
	if err != nil {
		return err
	}
	if err := recordAdmin(ctx, db, "keys-rotate", "TokenKey", g.ID, "kind=token"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "current token signing key: %s\nearlier keys verify their tokens until they expire (%s), then retire\n", g.ID, tokenKeyKeep)
	return nil
}

// rotateESign makes a new e-signature key current in the key file. New
// signatures are made under it and name it (kid); the earlier keys'
// public keys stay in the key file, never forgotten, so that every
// signature made under them keeps verifying (ward esign key lists them).
func rotateESign(ctx context.Context, st *storage, kf *keys.LocalFile, db store.Store, stdout io.Writer) error {
	if st.hsm.esignKey != "" {
		return usagef("--kind esign rotates the key file's e-signature key; an HSM's (--pkcs11-esign-key) rotates by creating a new key object and serving with it")
	}
	g, err := kf.RotateSigning(ctx, keys.KindESign, keys.SigningKey{}, 0)
	if err != nil {
		return err
	}
	if err := recordAdmin(ctx, db, "keys-rotate", "ESignKey", g.ID, "kind=esign"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "current e-signature key: %s\nnew signatures name it; earlier keys stay listed by ward esign key and keep verifying what they signed\n", g.ID)
	return nil
}

// rotateBackup makes a new backup root current.
func rotateBackup(ctx context.Context, kf *keys.LocalFile, db store.Store, stdout io.Writer) error {
	g, err := kf.RotateBackup(ctx)
	if err != nil {
		return err
	}
	if err := recordAdmin(ctx, db, "keys-rotate", "BackupKey", g.ID, "kind=backup"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "current backup key: %s\nnew backups are sealed under it; earlier backups name their key in their header and stay readable\n", g.ID)
	return nil
}

// newSigningKey creates an Ed25519 key object in the HSM for the next
// generation of a signing kind, labelled prefix-<n>.
func (h *hsmFlags) newSigningKey(ctx context.Context, prefix string, gens []keys.Generation) (keys.SigningKey, error) {
	hsm, err := h.open(ctx)
	if err != nil {
		return keys.SigningKey{}, err
	}
	defer hsm.Close()
	label := fmt.Sprintf("%s-%d", prefix, len(gens)+1)
	if _, err := hsm.CreateSigningKey(ctx, label, pkcs11.Ed25519); err != nil {
		return keys.SigningKey{}, err
	}
	s, err := hsm.Signer(ctx, label)
	if err != nil {
		return keys.SigningKey{}, err
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return keys.SigningKey{}, fmt.Errorf("the HSM's key %s is not Ed25519", label)
	}
	return keys.SigningKey{HSMLabel: label, Public: pub}, nil
}

// signers resolves the signing generations of the key file to signers:
// the file's own, or the HSM's objects, cached by label.
type signers struct {
	kf  *keys.LocalFile
	hsm *pkcs11.Provider // nil without one

	mu         sync.Mutex
	hsmSigners map[string]crypto.Signer
}

func (s *signers) of(ctx context.Context, g keys.Generation) (crypto.Signer, error) {
	if !g.InHSM {
		if k := s.kf.Signer(g.Kind, g.ID); k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("the key file no longer holds %s key %s", g.Kind, g.ID)
	}
	if s.hsm == nil {
		return nil, fmt.Errorf("%s key %s is in an HSM: serve with --key-provider pkcs11", g.Kind, g.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.hsmSigners[g.HSMLabel]; ok {
		return k, nil
	}
	k, err := s.hsm.Signer(ctx, g.HSMLabel)
	if err != nil {
		return nil, err
	}
	if s.hsmSigners == nil {
		s.hsmSigners = make(map[string]crypto.Signer)
	}
	s.hsmSigners[g.HSMLabel] = k
	return k, nil
}

// tokenKeys returns the token signing key and the earlier keys whose
// tokens are still accepted, re-reading the key file when it changed.
func (s *signers) tokenKeys() (crypto.Signer, []ed25519.PublicKey, error) {
	if err := s.kf.Refresh(); err != nil {
		return nil, nil, err
	}
	gens := s.kf.TokenKeys(time.Now(), tokenKeyKeep)
	if len(gens) == 0 {
		return nil, nil, fmt.Errorf("no token signing key")
	}
	cur := gens[len(gens)-1]
	key, err := s.of(context.Background(), cur)
	if err != nil {
		return nil, nil, err
	}
	var prev []ed25519.PublicKey
	for _, g := range gens[:len(gens)-1] {
		prev = append(prev, g.Public)
	}
	return key, prev, nil
}

// watchKeys follows rotations made by other processes sharing the key
// file: every interval it re-reads the file, and when the token keys
// changed it hands them to the auth server. It returns when ctx ends.
func watchKeys(ctx context.Context, interval time.Duration, sg *signers, authSrv *auth.Server, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		key, prev, err := sg.tokenKeys()
		if err != nil {
			logger.Error("reading the token signing keys failed; tokens stay signed by the key in use", "error", err.Error())
			continue
		}
		pub, _ := key.Public().(ed25519.PublicKey)
		id := fmt.Sprint(pub, prev)
		if id == last {
			continue
		}
		if err := authSrv.SetKeys(key, prev...); err != nil {
			logger.Error("the new token signing key cannot be used; tokens stay signed by the key in use", "error", err.Error())
			continue
		}
		if last != "" {
			logger.Info("token signing key changed", "kid", authSrv.KeyID(), "accepted", len(prev)+1)
		}
		last = id
	}
}
