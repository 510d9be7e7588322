package records

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Electronic signatures (21 CFR Part 11, package esign). A person signs
// one exact version of a resource:
//   - SignChallenge: the caller must be allowed to read that version (as
//     vread: not there looks like unknown, labels and Consent screen it)
//     and to sign (policy.DecideSign: a person with the right); the
//     ceremony then issues a single-use nonce. Recorded ("sign-challenge").
//   - Sign: the same checks, then the ceremony (password and second
//     factor again, the nonce consumed), then the signature: a statement
//     binding the signer, their printed name, the meaning, the time and
//     the SHA-256 of the version as stored, signed with the e-signature
//     key, in a Provenance whose target is that version. The Provenance
//     is sealed in the signed version's compartment with its security
//     labels (as a write's X-Provenance is), and commits with the
//     signing's ledger entry ("sign", naming the version, the Provenance,
//     the meaning and the signature's hash) and a signature row.
//   - Signatures: every version of a resource with its signatures, each
//     verified against the version as stored, with its ledger entry and an
//     inclusion proof in the latest checkpoint (esign.Record).
//
// A signed resource is still corrected, but only with a reason: an
// update of it (through any path: update, conditional update, a Bundle
// entry) must carry a Provenance with a reason (X-Provenance), and it is
// not deleted (ErrConflict); each version keeps its own signatures.

// Ledger actions of electronic signatures.
const (
	ActionSignChallenge = "sign-challenge"
	ActionSign          = esign.ActionSign
	ActionSignatures    = "signatures"
)

// Errors of a signing ceremony, which package api maps: ErrCeremony 401,
// ErrThrottled 429.
var (
	ErrCeremony  = errors.New("records: the signing ceremony failed")
	ErrThrottled = errors.New("records: too many failed signing attempts")
)

// maxSignedVersions bounds the versions a signature record lists.
const maxSignedVersions = 1000

// SignRequest names the version to sign and the meaning.
type SignRequest struct {
	Type, ID string
	Version  int64
	Meaning  string // an esign meaning code
}

// Target is the version the request names, "Type/id/_history/N".
func (r SignRequest) Target() string { return esign.Target(r.Type, r.ID, r.Version) }

// Signer is who a ceremony is about (package auth's Signer).
type Signer struct {
	UserID  string
	Name    string
	Right   bool
	Methods []string
}

// SignChallenge is what step 1 answers.
type SignChallenge struct {
	Nonce   string
	Expires string
	Target  string
	Signer  Signer
	// KeyOptions and KeyState are the signer's security key challenge,
	// when they have one (package auth's Challenge).
	KeyOptions, KeyState []byte
}

// Ceremony is the signer's re-authentication for one request (package
// auth's Signing bound to the request's credentials). Its errors are
// ErrCeremony or ErrThrottled when the person failed.
type Ceremony interface {
	Challenge(ctx context.Context, target, meaning string) (SignChallenge, error)
	Confirm(ctx context.Context, target, meaning string) (Signer, error)
}

// SignChallenge checks that the caller may sign req's version and has
// the ceremony issue a nonce for it. It is recorded.
func (s *Service) SignChallenge(ctx context.Context, c Caller, req SignRequest, cer Ceremony) (SignChallenge, error) {
	ch, row, err := s.signChallenge(ctx, c, req, cer)
	a := access{action: ActionSignChallenge, typ: req.Type, version: versionOf(Entry{Version: req.Version}), patient: row.Compartment}
	if fhir.ValidID(req.ID) {
		a.id = req.ID
	}
	return answer(ch, s.account(ctx, c, err, a))
}

func (s *Service) signChallenge(ctx context.Context, c Caller, req SignRequest, cer Ceremony) (SignChallenge, store.Resource, error) {
	row, _, err := s.signable(ctx, c, req)
	if err != nil {
		return SignChallenge{}, store.Resource{}, err
	}
	ch, err := cer.Challenge(ctx, req.Target(), req.Meaning)
	if err != nil {
		return SignChallenge{}, row, err
	}
	if err := s.maySign(c, req, ch.Signer); err != nil {
		return SignChallenge{}, row, err
	}
	ch.Target = req.Target()
	return ch, row, nil
}

// signable checks the request and that the caller may read its version,
// and returns the version's row and the read decision.
func (s *Service) signable(ctx context.Context, c Caller, req SignRequest) (store.Resource, policy.Decision, error) {
	if _, ok := esign.LookupMeaning(req.Meaning); !ok {
		return store.Resource{}, policy.Decision{}, invalid("meaning must be a signature type code of %s (1.2.840.10065.1.12.1.1 to .18)", esign.System)
	}
	if c.UserID == "" {
		return store.Resource{}, policy.Decision{}, fmt.Errorf("%w: only a person signs", ErrForbidden)
	}
	d, err := s.decide(c.Subject, policy.ActionRead, req.Type)
	if err != nil {
		return store.Resource{}, d, err
	}
	if !fhir.ValidID(req.ID) || req.Version < 1 {
		return store.Resource{}, d, ErrNotFound
	}
	row, err := s.store.Version(ctx, req.Type, req.ID, req.Version)
	if err != nil {
		return store.Resource{}, d, storeErr(err)
	}
	if !within(d, row.Compartment) {
		return store.Resource{}, d, hiddenIn(row.Compartment)
	}
	v, err := s.screen(ctx, c, d, row)
	if err != nil {
		return store.Resource{}, d, err
	}
	if row.Deleted {
		return store.Resource{}, d, fmt.Errorf("%w: a deletion is not signed", ErrGone)
	}
	if _, err := v.reveal(s.open(ctx, d, row)); err != nil {
		return store.Resource{}, d, err
	}
	return row, d, nil
}

// maySign asks the policy whether the caller, as the ceremony's signer,
// may sign.
func (s *Service) maySign(c Caller, req SignRequest, sg Signer) error {
	if sg.UserID != c.UserID {
		return fmt.Errorf("%w: the ceremony is not the caller's", ErrForbidden)
	}
	if d := s.policy.DecideSign(c.Subject, req.Type, sg.Right); !d.Allow {
		return fmt.Errorf("%w: %s", ErrForbidden, d.Reason)
	}
	return nil
}

// Sign runs the signing (see above) and returns the Provenance written.
// A refusal or a failed ceremony is recorded too.
func (s *Service) Sign(ctx context.Context, c Caller, req SignRequest, cer Ceremony) (Entry, error) {
	e, err := s.sign(ctx, c, req, cer)
	a := access{action: ActionSign, typ: req.Type, version: versionOf(Entry{Version: req.Version})}
	if fhir.ValidID(req.ID) {
		a.id = req.ID
	}
	var cf interface{ CeremonyReason() string }
	if errors.As(err, &cf) {
		a.detail = "ceremony=" + cf.CeremonyReason()
	}
	return answer(e, s.failed(ctx, c, err, a))
}

func (s *Service) sign(ctx context.Context, c Caller, req SignRequest, cer Ceremony) (Entry, error) {
	signer, err := s.esigner()
	if err != nil {
		return Entry{}, err
	}
	row, d, err := s.signable(ctx, c, req)
	if err != nil {
		return Entry{}, err
	}
	sg, err := cer.Confirm(ctx, req.Target(), req.Meaning)
	if err != nil {
		return Entry{}, err
	}
	if err := s.maySign(c, req, sg); err != nil {
		return Entry{}, err
	}
	stored, err := s.decrypt(ctx, row)
	if err != nil {
		return Entry{}, err
	}
	sum, err := esign.ContentHash(stored.Body)
	if err != nil {
		return Entry{}, fmt.Errorf("records: stored %s: %w", req.Type, err)
	}
	st := esign.Statement{Signer: sg.UserID, Name: sg.Name, Meaning: req.Meaning, Time: esign.FormatTime(s.now()),
		Target: req.Target(), SHA256: sum, Methods: sg.Methods}
	env, st, err := esign.Sign(signer, st)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	target, err := fhir.Parse(stored.Body, fhir.Limits{})
	if err != nil {
		return Entry{}, fmt.Errorf("records: stored %s: %w", req.Type, err)
	}
	prov := &fhir.Resource{Type: "Provenance", Object: esign.Provenance(st, env)}
	compartment := row.Compartment
	op := &writeOp{typ: "Provenance", id: newID(), res: prov, mustNew: true, within: d, sealIn: &compartment, labelsOf: target}
	if err := s.prepare(ctx, c, op); err != nil {
		return Entry{}, err
	}
	detail := "provenance=Provenance/" + op.id + " meaning=" + st.Meaning + " kid=" + st.KeyID + " sig=" + esign.SignatureHash(env)
	for attempt := 0; ; attempt++ {
		err = s.commitSignature(ctx, c, op, req, sg.UserID, detail)
		if !errors.Is(err, store.ErrConflict) || attempt >= s.cfg.WriteRetries {
			break
		}
	}
	if err != nil {
		return Entry{}, storeErr(err)
	}
	return op.entry, nil
}

// commitSignature writes a signature's Provenance, its ledger entry and
// its signature row in one transaction.
func (s *Service) commitSignature(ctx context.Context, c Caller, op *writeOp, req SignRequest, signer, detail string) error {
	now := s.now()
	if err := s.settle(ctx, c, op, now); err != nil {
		return err
	}
	e := c.entry(now, ActionSign)
	e.ResourceType, e.ResourceID, e.Version = req.Type, req.ID, strconv.FormatInt(req.Version, 10)
	e.Patient, e.Outcome, e.Detail = op.compartment, "success", detail
	reached := c.MarkEmergency(&e, e.Patient)
	rec, err := audit.NewRecord(e)
	if err != nil {
		return fmt.Errorf("records: audit entry: %w", err)
	}
	err = store.ReadWrite(ctx, s.store, func(tx store.Tx) error {
		if err := tx.PutVersion(ctx, op.row, op.index); err != nil {
			return err
		}
		recs := []audit.Record{rec}
		if err := audit.AppendInTx(ctx, tx, recs); err != nil {
			return err
		}
		return tx.PutSignature(ctx, store.SignatureRow{Type: req.Type, ID: req.ID, Version: req.Version, Provenance: op.id,
			Signer: signer, LedgerIndex: recs[0].Index, Signed: now})
	})
	if err != nil {
		return err
	}
	c.Trail.note(reached...)
	return nil
}

// signedGuard refuses an update of a signed resource that carries no
// Provenance with a reason, and any deletion of one (see above).
func (s *Service) signedGuard(ctx context.Context, op *writeOp, exists bool) error {
	if !exists || op.about != nil || op.typ == "Provenance" && op.sealIn != nil {
		return nil
	}
	rows, err := s.store.Signatures(ctx, op.typ, op.id)
	if err != nil {
		return storeErr(err)
	}
	if len(rows) == 0 {
		return nil
	}
	if op.res == nil {
		return fmt.Errorf("%w: %s/%s is electronically signed: it is not deleted; correct it with an update that gives a reason (X-Provenance)", ErrConflict, op.typ, op.id)
	}
	if op.provenance == nil || len(asList(op.provenance.res.Object["reason"])) == 0 {
		return fmt.Errorf("%w: %s/%s is electronically signed: an update must give its reason in an X-Provenance header (a Provenance with a reason); the signed versions stay in its history", ErrConflict, op.typ, op.id)
	}
	return nil
}

// Signatures returns the signature record of typ/id (esign.Record): every
// version, oldest first, each with the content the caller may see and its
// signatures, each verified against the version as stored, its ledger
// entry and, once a checkpoint covers it, its inclusion proof. The caller
// must be allowed to read the resource, every version of it (as an
// instance history), and Provenance. It is recorded.
func (s *Service) Signatures(ctx context.Context, c Caller, typ, id string) (*esign.Record, error) {
	r, compartment, err := s.signatures(ctx, c, typ, id)
	a := access{action: ActionSignatures, typ: typ, patient: compartment}
	if fhir.ValidID(id) {
		a.id = id
	}
	return answer(r, s.account(ctx, c, err, a))
}

func (s *Service) signatures(ctx context.Context, c Caller, typ, id string) (*esign.Record, string, error) {
	d, err := s.decide(c.Subject, policy.ActionRead, typ)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.decide(c.Subject, policy.ActionRead, "Provenance"); err != nil {
		return nil, "", err
	}
	if !fhir.ValidID(id) {
		return nil, "", ErrNotFound
	}
	cur, err := s.store.Current(ctx, typ, id)
	if err != nil {
		return nil, "", storeErr(err)
	}
	if !within(d, cur.Compartment) {
		return nil, "", hiddenIn(cur.Compartment)
	}
	if cur.Version > maxSignedVersions {
		return nil, "", fmt.Errorf("%w: %s/%s has more than %d versions", ErrTooCostly, typ, id, maxSignedVersions)
	}
	rows, err := s.store.Signatures(ctx, typ, id)
	if err != nil {
		return nil, "", storeErr(err)
	}
	cpSize, cpNote, err := s.store.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		cpSize, cpNote, err = 0, nil, nil
	}
	if err != nil {
		return nil, "", storeErr(err)
	}
	rec := &esign.Record{Format: esign.RecordFormat, Resource: typ + "/" + id, Checkpoint: string(cpNote)}
	for v := int64(1); v <= cur.Version; v++ {
		row, err := s.store.Version(ctx, typ, id, v)
		if err != nil {
			return nil, "", storeErr(err)
		}
		if !within(d, row.Compartment) {
			return nil, "", hiddenIn(row.Compartment)
		}
		view, err := s.screen(ctx, c, d, row)
		if err != nil {
			return nil, "", err
		}
		ver := esign.Version{Version: v, LastUpdated: esign.FormatTime(row.LastUpdated), Deleted: row.Deleted, Signatures: []esign.Signature{}}
		var stored []byte
		if !row.Deleted {
			served, err := view.reveal(s.open(ctx, d, row))
			if err != nil {
				return nil, "", err
			}
			full, err := s.decrypt(ctx, row)
			if err != nil {
				return nil, "", err
			}
			ver.Resource, stored = served.Body, full.Body
			if ver.SHA256, err = esign.ContentHash(full.Body); err != nil {
				return nil, "", fmt.Errorf("records: stored %s: %w", typ, err)
			}
		}
		for _, sr := range rows {
			if sr.Version == v {
				ver.Signatures = append(ver.Signatures, s.signatureOf(ctx, sr, stored, cpSize))
			}
		}
		rec.Versions = append(rec.Versions, ver)
	}
	return rec, cur.Compartment, nil
}

// signatureOf loads, verifies and proves one signature of a version whose
// stored content is stored (nil for a deletion). A signature that fails
// any check is listed with status invalid and the problem.
func (s *Service) signatureOf(ctx context.Context, sr store.SignatureRow, stored []byte, cpSize int64) esign.Signature {
	out := esign.Signature{Provenance: "Provenance/" + sr.Provenance, Signer: sr.Signer, Status: esign.StatusInvalid}
	fail := func(err error) esign.Signature {
		out.Problem = err.Error()
		return out
	}
	row, err := s.store.Current(ctx, "Provenance", sr.Provenance)
	if err != nil {
		return fail(fmt.Errorf("the Provenance cannot be read: %w", storeErr(err)))
	}
	pe, err := s.decrypt(ctx, row)
	if err != nil || pe.Body == nil {
		return fail(errors.New("the Provenance cannot be opened"))
	}
	var obj map[string]any
	if err := json.Unmarshal(pe.Body, &obj); err != nil {
		return fail(errors.New("the Provenance is not JSON"))
	}
	shown, err := esign.Signatures(obj)
	if err != nil {
		return fail(err)
	}
	out.Data = shown[0].Envelope
	out.Name, out.When = shown[0].Name, shown[0].When
	out.Meaning = esign.Meaning{Code: shown[0].Meaning, Display: shown[0].Display}
	st, err := shown[0].Verify(s.esignKeys())
	if err == nil {
		err = st.Check(esign.Target(sr.Type, sr.ID, sr.Version), stored)
		if err == nil && stored == nil {
			err = errors.New("the signed version is a deletion")
		}
	}
	if err != nil {
		return fail(err)
	}
	good := esign.Of(st, out.Provenance, shown[0].Envelope)
	entries, err := s.store.LedgerEntries(ctx, sr.LedgerIndex, sr.LedgerIndex+1)
	if err != nil || len(entries) != 1 {
		out = good
		out.Status = esign.StatusInvalid
		return fail(errors.New("the signing's ledger entry cannot be read"))
	}
	good.Ledger = &esign.Inclusion{Index: sr.LedgerIndex, Entry: entries[0].Entry}
	le, err := ledger.DecodeEntry(entries[0].Entry)
	if err == nil {
		err = esign.CheckEntry(le, st, shown[0].Envelope)
	}
	if err != nil {
		out = good
		out.Status = esign.StatusInvalid
		return fail(err)
	}
	if sr.LedgerIndex < cpSize {
		proof, err := ledger.ProveInclusion(ctx, audit.Source(s.store), sr.LedgerIndex, cpSize)
		if err != nil {
			out = good
			out.Status = esign.StatusInvalid
			return fail(fmt.Errorf("no inclusion proof: %w", err))
		}
		for _, h := range proof {
			good.Ledger.Proof = append(good.Ledger.Proof, h[:])
		}
	}
	return good
}

// esigner returns the e-signature key in force.
func (s *Service) esigner() (crypto.Signer, error) {
	if s.cfg.ESignSource != nil {
		k, err := s.cfg.ESignSource.ESignSigner()
		if err != nil {
			return nil, fmt.Errorf("%w: the e-signature key: %w", ErrUnavailable, err)
		}
		return k, nil
	}
	if s.cfg.ESigner == nil {
		return nil, fmt.Errorf("%w: no e-signature key is configured", ErrUnavailable)
	}
	return s.cfg.ESigner, nil
}

// esignKeys returns every e-signature key that verifies: the one in
// force and those rotated out. A source that fails answers none, so
// that every signature shows as not verified rather than as valid.
func (s *Service) esignKeys() esign.Keys {
	if s.cfg.ESignSource == nil {
		return s.cfg.ESignKeys
	}
	pubs, err := s.cfg.ESignSource.ESignKeys()
	ks := esign.Keys{}
	if err != nil {
		return ks
	}
	for _, p := range pubs {
		ks.Add(p)
	}
	return ks
}
