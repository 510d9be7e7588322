package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

const auditSummary = `verify      recompute every leaf and tree hash of the audit ledger, check every
            stored checkpoint's signature and the index that finds entries by
            patient, actor, client and time; with --checkpoint FILE, also prove the ledger
            extends that earlier checkpoint. Exit 0 only when intact.
checkpoint  sign a checkpoint of the ledger's current size and print it.
prove       print an inclusion proof of entry --index in the latest checkpoint.
pseudonym   print the keyed hash the ledger records in place of a value a
            caller who proved no one sent (--kind, --value), so that the
            attempts made with it can be found: kinds are client,
            username, resource-type, resource-id and query-name.`

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "audit", "verify", "checkpoint", "prove", "pseudonym")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("audit "+sub, auditSummary)
	st.register(fs)
	checkpointFile := fs.String("checkpoint", "", "verify: a checkpoint saved earlier (signed note) that the ledger must extend")
	vkey := fs.String("vkey", "", "verify: the ledger's first verifier key (note format), from which its key chain is followed; default: derived from the key file")
	chainFile := fs.String("key-chain", "", "verify: the ledger's key chain document (GET /ledger/keys) whose transitions are followed from --vkey (or from the first key it names, without --vkey); default: the key file's")
	index := fs.Int64("index", -1, "prove: the entry's index")
	kind := fs.String("kind", "", "pseudonym: what the value is (client, username, resource-type, resource-id, query-name)")
	value := fs.String("value", "", "pseudonym: the value")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if sub == "pseudonym" {
		return auditPseudonym(stdout, &st, *kind, *value)
	}
	if sub == "prove" && *index < 0 {
		return usagef("--index is required")
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "verify":
		return auditVerify(ctx, stdout, &st, db, *checkpointFile, *vkey, *chainFile)
	case "checkpoint":
		lk, err := openLedgerKeys(ctx, &st, db)
		if err != nil {
			return err
		}
		_, note, err := audit.Checkpoint(ctx, db, lk)
		if err != nil {
			return err
		}
		_, err = stdout.Write(note)
		return err
	}
	return auditProve(ctx, stdout, db, *index)
}

// errNoCheckpoint: the ledger has no stored checkpoint, so no name yet.
var errNoCheckpoint = errors.New("the ledger has no checkpoint yet: start the server, which signs one every second")

// ledgerOrigin is the origin of the ledger's stored checkpoints.
func ledgerOrigin(ctx context.Context, db store.Store) (string, error) {
	_, latest, err := db.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return "", errNoCheckpoint
	}
	if err != nil {
		return "", err
	}
	origin, _, _ := strings.Cut(string(latest), "\n")
	return origin, nil
}

// ledgerSigner builds the signer of the ledger key in force from the key
// file, under the origin the stored checkpoints use.
func ledgerSigner(ctx context.Context, st *storage, db store.Store) (*ledger.Signer, error) {
	lk, err := openLedgerKeys(ctx, st, db)
	if err != nil {
		return nil, err
	}
	return lk.signer()
}

func auditVerify(ctx context.Context, out io.Writer, st *storage, db store.Store, checkpointFile, vkey, chainFile string) error {
	origin, err := ledgerOrigin(ctx, db)
	if err != nil {
		return err
	}
	// The stored checkpoints are read before the key chain, so that it
	// knows every key that signed one.
	cps, err := audit.StoredCheckpoints(ctx, db)
	if err != nil {
		return err
	}
	chain, err := verifierChain(ctx, st, db, vkey, chainFile)
	if err != nil {
		return err
	}
	var trusted []ledger.SignedCheckpoint
	if checkpointFile != "" {
		b, err := os.ReadFile(checkpointFile) // #nosec G304 G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
		if err != nil {
			return err
		}
		trusted = append(trusted, b)
	}
	report, err := ledger.Verify(ctx, audit.Source(db), cps, nil, ledger.VerifyOptions{Origin: origin, Trusted: trusted, Keys: chain})
	if err != nil {
		return notIntact(err)
	}
	// The entries are authentic: the index that finds them by patient,
	// actor, client and time must say what they say.
	rows, err := audit.VerifyPatientIndex(ctx, db, report.Size)
	if err != nil {
		return notIntact(err)
	}
	fmt.Fprintf(out, "ledger intact: %d entries, root %s\n%d signed checkpoints verified (latest at %d)",
		report.Size, base64.StdEncoding.EncodeToString(report.Root[:]), report.Checkpoints, report.Latest.Size)
	if n := len(chain.Transitions()); n > 0 {
		fmt.Fprintf(out, " across %d key transition(s), each signed by the key before it and recorded in the ledger", n)
	}
	if report.Trusted > 0 {
		fmt.Fprintf(out, "; extends %d saved checkpoint(s)", report.Trusted)
	}
	if report.Unsigned > 0 {
		fmt.Fprintf(out, "; %d entries after the latest checkpoint are consistent but not yet signed", report.Unsigned)
	}
	fmt.Fprintf(out, "\npatient index intact: every entry is found under each patient it names and its time (%d rows for entries naming several patients)\n", rows)
	fmt.Fprintln(out, "actor index intact: every entry is found under its actor and its client")
	if dir := st.spoolDir(); dir != "" {
		n, err := audit.PendingSpools(ctx, db, dir)
		if err != nil {
			return err
		}
		if n > 0 {
			fmt.Fprintf(out, "%d entries wait in the ledger spool %s: a running Ward folds them in within moments, a stopped one when it next starts\n", n, dir)
		}
	} else if n, err := db.PendingCount(ctx); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(out, "%d entries wait in the pending table: a running Ward folds them in within moments, a stopped one when it next starts\n", n)
	}
	return nil
}

// notIntact is the error of a failed verification, naming the first bad
// index when the verifier found one.
func notIntact(err error) error {
	var ve *ledger.VerifyError
	if errors.As(err, &ve) {
		return fmt.Errorf("ledger NOT intact: first bad index %d: %s", ve.Index, ve.Reason)
	}
	return fmt.Errorf("ledger NOT intact: %w", err)
}

func auditProve(ctx context.Context, out io.Writer, db store.Store, index int64) error {
	size, cp, err := db.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("the ledger has no checkpoint yet")
	}
	if err != nil {
		return err
	}
	if index >= size {
		return fmt.Errorf("entry %d is not covered by the latest checkpoint (size %d) yet", index, size)
	}
	proof, err := ledger.ProveInclusion(ctx, audit.Source(db), index, size)
	if err != nil {
		return err
	}
	entries, err := db.LedgerEntries(ctx, index, index+1)
	if err != nil || len(entries) != 1 {
		return fmt.Errorf("entry %d: %v", index, err)
	}
	hashes := make([]string, len(proof))
	for i, h := range proof {
		hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	leaf := ledger.LeafHash(entries[0].Entry)
	doc := map[string]any{
		"index": index, "size": size, "entry": string(entries[0].Entry),
		"leaf_hash": base64.StdEncoding.EncodeToString(leaf[:]), "proof": hashes, "checkpoint": string(cp),
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// auditPseudonym prints the pseudonym of value: the key file's keyed hash
// (keys.NewPseudonyms), as ward serve records it.
func auditPseudonym(out io.Writer, st *storage, kind, value string) error {
	if _, ok := api.PseudonymKinds[kind]; !ok {
		return usagef("--kind must be one of client, username, resource-type, resource-id, query-name")
	}
	if value == "" {
		return usagef("--value is required")
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	p, err := api.PseudonymOf(keys.NewPseudonyms(kf.IndexKey()), kind, value)
	if err != nil {
		return usagef("%v", err)
	}
	_, err = fmt.Fprintln(out, p)
	return err
}
