package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/keys"
)

// maxESignFile bounds the record and key files ward esign verify reads.
const maxESignFile = 64 << 20

// runESign serves ward esign: key prints the keys an offline verifier
// needs (every e-signature public key the key file keeps, with its id,
// and the ledger's checkpoint key); verify checks a signature record
// ($signatures) with only those keys.
func runESign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "esign", "key", "verify")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("esign "+sub, "key prints every e-signature public key the key file keeps, with its key id (the kid a signature names),\n"+
		"the one in force last, and the ledger's checkpoint key; --json prints them as the key file ward esign verify --keys reads.\n"+
		"verify --keys FILE RECORD checks every signature of a signature record (GET .../$signatures) offline: each under the key it names.")
	if sub == "key" {
		st.register(fs)
	}
	asJSON := fs.Bool("json", false, "key: print the verifier's key file; verify: print the findings as JSON")
	keysFile := fs.String("keys", "", "verify: the key file printed by ward esign key --json")
	checkpoint := fs.String("checkpoint", "", "verify: a checkpoint you hold, which the record must have been proved in")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if sub == "verify" {
		if fs.NArg() != 1 || *keysFile == "" {
			return usagef("usage: ward esign verify --keys FILE [--checkpoint FILE] RECORD")
		}
		return esignVerify(*keysFile, *checkpoint, fs.Arg(0), *asJSON, stdout)
	}
	if fs.NArg() != 0 {
		return usagef("ward esign key takes no arguments")
	}
	return esignKey(ctx, &st, *asJSON, stdout)
}

func esignKey(ctx context.Context, st *storage, asJSON bool, stdout io.Writer) error {
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	gens := kf.Generations(keys.KindESign)
	if len(gens) == 0 {
		return errors.New("the key file has no e-signature key: ward keys rotate --kind esign makes one")
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	signer, err := ledgerSigner(ctx, st, db)
	if err != nil {
		return err
	}
	trust := esign.Trust{Format: esign.TrustFormat, Ledger: signer.VerifierKey()}
	for _, g := range gens {
		trust.ESign = append(trust.ESign, esign.FormatKey(g.Public))
	}
	if asJSON {
		out, err := json.MarshalIndent(trust, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GENERATION\tKEY ID (kid)\tCREATED\tSTATE\tPUBLIC KEY")
	for _, g := range gens {
		state := "in force: signs"
		if !g.Retired.IsZero() {
			state = "retired " + g.Retired.Format("2006-01-02") + ": verifies"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.ID, esign.KeyID(g.Public), g.Created.Format("2006-01-02"), state, esign.FormatKey(g.Public))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "ledger checkpoint key: %s\n", trust.Ledger)
	return err
}

func esignVerify(keysFile, checkpointFile, recordFile string, asJSON bool, stdout io.Writer) error {
	read := func(p string) ([]byte, error) {
		b, err := readLimited(p, maxESignFile)
		if err != nil {
			return nil, fmt.Errorf("esign verify: %w", err)
		}
		return b, nil
	}
	kb, err := read(keysFile)
	if err != nil {
		return err
	}
	ks, ledgerKey, err := esign.ParseTrust(kb)
	if err != nil {
		return err
	}
	rb, err := read(recordFile)
	if err != nil {
		return err
	}
	rec, err := esign.ParseRecord(rb)
	if err != nil {
		return err
	}
	var trusted []byte
	if checkpointFile != "" {
		if trusted, err = read(checkpointFile); err != nil {
			return err
		}
	}
	findings, err := esign.VerifyRecord(rec, ks, ledgerKey, trusted, nil)
	if err != nil {
		return err
	}
	bad := 0
	for _, f := range findings {
		if !f.OK {
			bad++
		}
	}
	if asJSON {
		out, err := json.MarshalIndent(map[string]any{"resource": rec.Resource, "findings": findings, "ok": bad == 0}, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		for _, f := range findings {
			verdict := "valid"
			if !f.OK {
				verdict = "NOT valid: " + f.Problem
			}
			fmt.Fprintf(stdout, "%s version %d %s: %s\n", rec.Resource, f.Version, f.Provenance, verdict)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d signatures do not verify", bad, len(findings))
	}
	if !asJSON {
		fmt.Fprintf(stdout, "%d signatures verified\n", len(findings))
	}
	return nil
}

// readLimited reads a file of at most max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}
