package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/wardhealth/ward/internal/esign"
)

// The e-signature steps of ward validate (21 CFR Part 11, 11.50, 11.70,
// 11.200(a)): the person of --user-token-file, who holds the right to
// sign (ward user signing grant), signs the test patient's corrected
// version with the meaning "Validation Signature" through the two-step
// ceremony, entering their password (--signer-password-file) and a TOTP
// code computed from their authenticator's secret
// (--signer-totp-secret-file); the signature record is then checked as
// the server shows it ($signatures) and offline (esign.VerifyRecord,
// with the key file's e-signature key and the ledger's key); and the
// signed record is refused a correction without a reason and a deletion.

// validateMeaning is the meaning of validation signatures: HL7's
// "Validation Signature".
const validateMeaning = "1.2.840.10065.1.12.1.6"

// totpPeriod is the authenticator's time step (RFC 6238 default, as Ward
// enrols).
const totpPeriod = 30 * time.Second

// signedVersion is the version the run signs: the correction's.
const signedVersion = 2

func (v *validation) signPath() string {
	return fmt.Sprintf("/fhir/Patient/%s/_history/%d/$sign", v.patient, signedVersion)
}

// sign runs the ceremony: a challenge (the nonce), then the nonce with
// the password and a code of a time step later than any the person used
// before the run started (a code is accepted once per step, and the
// person's token was made with one).
func (v *validation) sign(ctx context.Context) (string, error) {
	if v.signerPassword == "" {
		return "", errSkipped{"no signer given (--signer-password-file and --signer-totp-secret-file)"}
	}
	path := v.signPath()
	body := map[string]any{"meaning": validateMeaning}
	resp, b, err := v.do(ctx, http.MethodPost, path, v.user, body, "Content-Type", "application/json", "Accept", "application/json")
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusOK); err != nil {
		return "", fmt.Errorf("the challenge: %w", err)
	}
	var ch struct {
		Target string `json:"target"`
		Nonce  string `json:"nonce"`
		Signer struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"signer"`
	}
	if err := json.Unmarshal(b, &ch); err != nil || ch.Nonce == "" {
		return "", errors.New("the challenge: 200 without a nonce")
	}
	if want := fmt.Sprintf("Patient/%s/_history/%d", v.patient, signedVersion); ch.Target != want || ch.Signer.ID == "" || ch.Signer.Name == "" {
		return "", fmt.Errorf("the challenge names target %q, signer %q (%q); want %s and the signer's printed name", ch.Target, ch.Signer.ID, ch.Signer.Name, want)
	}
	if wait := time.Until(v.started.Truncate(totpPeriod).Add(totpPeriod)); wait > 0 {
		v.logf("  %-18s waiting %s for the authenticator's next time step", "sign", wait.Round(time.Second))
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
	code, err := totp.GenerateCode(v.totpSecret, time.Now())
	if err != nil {
		return "", fmt.Errorf("--signer-totp-secret-file: %w", err)
	}
	body["nonce"], body["password"], body["code"] = ch.Nonce, v.signerPassword, code
	resp, b, err = v.do(ctx, http.MethodPost, path, v.user, body, "Content-Type", "application/json")
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusCreated); err != nil {
		return "", fmt.Errorf("the ceremony: %w", err)
	}
	var prov struct {
		ID     string `json:"id"`
		Target []struct {
			Reference string `json:"reference"`
		} `json:"target"`
		Signature []struct {
			When string `json:"when"`
			Who  struct {
				Display string `json:"display"`
			} `json:"who"`
			Type []struct {
				Code string `json:"code"`
			} `json:"type"`
		} `json:"signature"`
	}
	if err := json.Unmarshal(b, &prov); err != nil {
		return "", fmt.Errorf("the Provenance: %w", err)
	}
	switch {
	case len(prov.Target) != 1 || prov.Target[0].Reference != ch.Target:
		return "", fmt.Errorf("201, but the Provenance targets %v, want %s", prov.Target, ch.Target)
	case len(prov.Signature) != 1 || prov.Signature[0].Who.Display != ch.Signer.Name || prov.Signature[0].When == "" ||
		len(prov.Signature[0].Type) != 1 || prov.Signature[0].Type[0].Code != validateMeaning:
		return "", errors.New("201, but the Provenance does not show the printed name, the time and the meaning")
	}
	v.signer, v.signerName, v.signature = ch.Signer.ID, ch.Signer.Name, "Provenance/"+prov.ID
	return fmt.Sprintf("200 nonce, then 201 Provenance/%s: %s signed %s (Validation Signature) at %s",
		prov.ID, ch.Signer.Name, ch.Target, prov.Signature[0].When), nil
}

// signVerify reads $signatures until a checkpoint covers the signing,
// checks what the server says of the signature, then checks the record
// offline.
func (v *validation) signVerify(ctx context.Context) (string, error) {
	if len(v.esignKeys) == 0 {
		return "", fmt.Errorf("the key file has no e-signature key to verify with: %w", v.esignKeyErr)
	}
	chain, _, err := v.ledgerKeys.LedgerKeys()
	if err != nil {
		return "", err
	}
	for {
		resp, b, err := v.do(ctx, http.MethodGet, "/fhir/Patient/"+v.patient+"/$signatures", v.user, nil, "Accept", "application/json")
		if err != nil {
			return "", err
		}
		if err := want(resp, b, http.StatusOK); err != nil {
			return "", err
		}
		rec, err := esign.ParseRecord(b)
		if err != nil {
			return "", err
		}
		sig, err := v.shown(rec)
		if err != nil {
			return "", err
		}
		if rec.Checkpoint != "" && sig.Ledger != nil && len(sig.Ledger.Proof) > 0 {
			findings, err := esign.VerifyRecordChain(rec, v.esignKeys, chain, nil, nil)
			if err != nil {
				return "", fmt.Errorf("offline: %w", err)
			}
			if len(findings) != 1 || !findings[0].OK {
				return "", fmt.Errorf("offline verification: %+v", findings)
			}
			return fmt.Sprintf("$signatures: version %d signed by %s, valid; offline: %q, ledger entry %d proven included",
				signedVersion, v.signerName, findings[0].Manifestation, findings[0].LedgerIndex), nil
		}
		select {
		case <-ctx.Done():
			return "", errors.New("no signed checkpoint covers the signing")
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// shown checks that the record shows exactly the run's signature, on the
// signed version, as the server verified it.
func (v *validation) shown(rec *esign.Record) (esign.Signature, error) {
	var all []esign.Signature
	var on esign.Signature
	for _, ver := range rec.Versions {
		all = append(all, ver.Signatures...)
		if ver.Version == signedVersion && len(ver.Signatures) == 1 {
			on = ver.Signatures[0]
		}
	}
	switch {
	case rec.Resource != "Patient/"+v.patient:
		return on, fmt.Errorf("the record is of %s", rec.Resource)
	case len(all) != 1 || on.Provenance != v.signature:
		return on, fmt.Errorf("%d signatures on the record, want only %s on version %d", len(all), v.signature, signedVersion)
	case on.Status != esign.StatusValid:
		return on, fmt.Errorf("the server calls the signature %s: %s", on.Status, on.Problem)
	case on.Signer != v.signer || on.Name != v.signerName || on.Meaning.Code != validateMeaning || on.When == "":
		return on, errors.New("the record does not show the signer, printed name, meaning and time signed")
	}
	return on, nil
}

// signedRecord checks that the signed patient is corrected only with a
// reason and is not deleted, and still stands at the signed version.
func (v *validation) signedRecord(ctx context.Context) (string, error) {
	p := v.testPatient()
	p["id"], p["birthDate"] = v.patient, "1970-01-03"
	resp, b, err := v.do(ctx, http.MethodPut, "/fhir/Patient/"+v.patient, v.service, p)
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusConflict); err != nil {
		return "", fmt.Errorf("a correction without a reason: %w, want 409", err)
	}
	resp, b, err = v.do(ctx, http.MethodDelete, "/fhir/Patient/"+v.patient, v.service, nil)
	if err != nil {
		return "", err
	}
	if err := want(resp, b, http.StatusConflict); err != nil {
		return "", fmt.Errorf("a deletion: %w, want 409", err)
	}
	resp, got, err := v.readPatient(ctx, v.service)
	if err != nil {
		return "", err
	}
	meta, _ := got["meta"].(map[string]any)
	if resp.StatusCode != http.StatusOK || meta["versionId"] != "2" || got["birthDate"] != "1970-01-02" {
		return "", fmt.Errorf("after the refusals: status %d, version %v, birthDate %v; want the signed version 2", resp.StatusCode, meta["versionId"], got["birthDate"])
	}
	return "a correction without a reason: 409; a deletion: 409; the patient stays at the signed version 2", nil
}

// readSigner reads the signer's password and authenticator secret.
func readSigner(passwordFile, secretFile string) (password, secret string, err error) {
	if passwordFile == "" && secretFile == "" {
		return "", "", nil
	}
	if passwordFile == "" || secretFile == "" {
		return "", "", usagef("--signer-password-file and --signer-totp-secret-file go together")
	}
	pb, err := os.ReadFile(passwordFile) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
	if err != nil {
		return "", "", usagef("--signer-password-file: %v", err)
	}
	// The password as written, without the line's end: spaces are part
	// of a password.
	password = strings.TrimSuffix(strings.TrimSuffix(string(pb), "\n"), "\r")
	if password == "" || strings.ContainsAny(password, "\r\n") {
		return "", "", usagef("--signer-password-file: want one line")
	}
	if secret, err = readLine(secretFile); err != nil {
		return "", "", usagef("--signer-totp-secret-file: %v", err)
	}
	secret = strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	if _, err := totp.GenerateCode(secret, time.Now()); err != nil {
		return "", "", usagef("--signer-totp-secret-file: not a base32 authenticator secret")
	}
	return password, secret, nil
}
