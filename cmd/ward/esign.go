package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
)

const esignSummary = `Electronic signatures (21 CFR Part 11).

  key     print Ward's public e-signature keys and the ledger's verifier
          key as one JSON file: all that ward esign verify needs.
  verify  RECORD --key KEYS [--checkpoint FILE] [--json]
          check a signature record (GET /fhir/{type}/{id}/$signatures)
          offline: every signature opens under a trusted key, signs its
          version's content as the record carries it, shows what it
          signed, and its signing's ledger entry is proven included in
          the checkpoint (the record's own, or FILE, which must then be
          the one it was proved in). Exit 0 only when every signature
          holds.`

func runESign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "esign", "key", "verify")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("esign "+sub, esignSummary)
	if sub == "key" {
		st.register(fs)
	}
	keyFile := fs.String("key", "", "verify: the key file ward esign key printed (required)")
	checkpoint := fs.String("checkpoint", "", "verify: a ledger checkpoint (signed note) you trust, e.g. from a witness or the published directory")
	asJSON := fs.Bool("json", false, "verify: print the findings as JSON, without progress")
	var record string
	if sub == "verify" && len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		record, rest = rest[0], rest[1:]
	}
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if sub == "key" {
		return esignKey(ctx, stdout, &st)
	}
	if record == "" && fs.NArg() == 1 {
		record = fs.Arg(0)
	}
	if record == "" || *keyFile == "" {
		return usagef("usage: ward esign verify RECORD --key KEYS [--checkpoint FILE] [--json]")
	}
	return esignVerify(stdout, stderr, record, *keyFile, *checkpoint, *asJSON)
}

// esignKey prints the Trust file: the e-signature keys that verify
// (the one in use and the key file's, when an HSM signs), and the
// ledger's verifier key.
func esignKey(ctx context.Context, out io.Writer, st *storage) error {
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	var hsm *pkcs11.Provider
	if st.hsm.usesHSM() {
		if hsm, err = st.hsm.open(ctx); err != nil {
			return err
		}
		defer hsm.Close()
	}
	_, ks, err := st.hsm.esignSigner(ctx, kf, hsm)
	if err != nil {
		return err
	}
	lk, err := openLedgerKeys(ctx, st, db)
	if err != nil {
		return err
	}
	chain, err := lk.chain()
	if err != nil {
		return err
	}
	// The ledger's first key and its transitions: a verifier follows the
	// key to the one that signed each checkpoint.
	t := esign.Trust{Format: esign.TrustFormat, Ledger: chain.FirstKey()}
	for _, n := range chain.Notes() {
		t.LedgerTransitions = append(t.LedgerTransitions, string(n))
	}
	for _, pub := range ks {
		t.ESign = append(t.ESign, esign.FormatKey(pub))
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// esignVerify checks a signature record offline.
func esignVerify(out, stderr io.Writer, recordFile, keyFile, checkpointFile string, asJSON bool) error {
	kb, err := os.ReadFile(keyFile) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
	if err != nil {
		return usagef("--key: %v", err)
	}
	keys, ledgerChain, err := esign.ParseTrustChain(kb)
	if err != nil {
		return err
	}
	rb, err := os.ReadFile(recordFile) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
	if err != nil {
		return usagef("%v", err)
	}
	rec, err := esign.ParseRecord(rb)
	if err != nil {
		return err
	}
	var trusted []byte
	if checkpointFile != "" {
		if trusted, err = os.ReadFile(checkpointFile); err != nil { // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
			return usagef("--checkpoint: %v", err)
		}
	}
	p := newProgress(stderr, !asJSON, "verifying signatures")
	findings, err := esign.VerifyRecordChain(rec, keys, ledgerChain, trusted, func(done, total int) { p.count(done, fmt.Sprintf("of %d", total)) })
	p.done()
	if err != nil {
		return err
	}
	failed := 0
	for _, f := range findings {
		if !f.OK {
			failed++
		}
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"resource": rec.Resource, "ok": failed == 0 && len(findings) > 0, "signatures": len(findings), "failed": failed, "findings": findings}); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			if f.OK {
				fmt.Fprintf(out, "OK    %s version %d  %s  (%s, ledger entry %d)\n", rec.Resource, f.Version, f.Manifestation, f.Provenance, f.LedgerIndex)
			} else {
				fmt.Fprintf(out, "FAIL  %s version %d  %s: %s\n", rec.Resource, f.Version, f.Provenance, f.Problem)
			}
		}
	}
	switch {
	case len(findings) == 0:
		return errors.New("the record holds no signature")
	case failed > 0:
		return fmt.Errorf("%d of %d signatures failed verification", failed, len(findings))
	}
	if !asJSON {
		fmt.Fprintf(out, "%d signatures of %s verified\n", len(findings), rec.Resource)
	}
	return nil
}

// esignSigner returns the key that signs electronic signatures — the
// HSM's Ed25519 key when --pkcs11-esign-key names one, else the key
// file's — and the public keys that verify them: that key's, and the key
// file's too when an HSM signs, so that signatures made before the move
// still verify.
func (h *hsmFlags) esignSigner(ctx context.Context, kf *keys.LocalFile, hsm *pkcs11.Provider) (crypto.Signer, []ed25519.PublicKey, error) {
	// Every e-signature key the key file keeps verifies: the one in force
	// and those rotated out (ward keys rotate --kind esign).
	fs, ferr := kf.ESignSigner()
	fileKey, _ := kf.ESignKeys()
	if hsm == nil || h.esignKey == "" {
		if h.esignKey != "" {
			return nil, nil, usagef("--pkcs11-esign-key needs --key-provider pkcs11")
		}
		if ferr != nil {
			return nil, nil, ferr
		}
		return fs, fileKey, nil
	}
	s, err := hsm.Signer(ctx, h.esignKey)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("the HSM key %s is not Ed25519: e-signatures need an Ed25519 key", h.esignKey)
	}
	return s, append([]ed25519.PublicKey{pub}, fileKey...), nil
}
