package records

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Erasure (GDPR Art. 17) by crypto-shredding. A privacy officer with a
// fresh second factor asks for a patient's erasure, with a reason and a
// legal basis (codes); a second one approves it, never the first. The
// approval, unless a legal hold stands:
//  1. records the compartment in the key provider's erasure register, so
//     that its data key is never handed out again, by any process, nor
//     by one started on a database copy restored later (keys.Keyring);
//  2. in one transaction with its ledger entry, deletes every version
//     sealed in the compartment, its index rows and its wrapped data key,
//     leaving each of its resources a bodiless deletion, so that its id
//     answers 410 Gone on every path;
//  3. returns a certificate signed by the certifier's key.
//
// The ledger keeps its entries: they hold ids, no PHI. Shared resources
// and other patients are untouched. Step 1 comes first: if step 2 fails,
// the data is unreadable already and approving again finishes the job.

// Ledger actions of erasure and legal holds.
const (
	ActionErasureRequest = "erasure-request"
	ActionErasure        = "erasure"
	ActionLegalHold      = "legal-hold"
	ActionLegalRelease   = "legal-hold-release"
)

// ErasureReasons are the reasons an erasure may be asked for with (GDPR
// Art. 17(1)); LegalBases the legal bases. Codes only: the ledger and the
// database keep no free text about an erasure.
var (
	ErasureReasons = []string{"patient-request", "consent-withdrawn", "no-longer-necessary", "objection", "unlawful-processing", "legal-obligation"}
	LegalBases     = []string{"gdpr-art17-1a", "gdpr-art17-1b", "gdpr-art17-1c", "gdpr-art17-1d", "gdpr-art17-1e", "gdpr-art17-1f"}
	HoldReasons    = []string{"litigation", "regulator", "investigation", "retention-law"}
)

// Certifier signs certificates (ledger.Certifier).
type Certifier interface {
	Certify(lines ...string) ([]byte, error)
	VerifierKey() string
}

// ErasureRequest asks for a patient's erasure.
type ErasureRequest struct {
	Patient, Reason, LegalBasis string
	FreshMFA                    bool // the caller checked a second factor in the last minutes
}

// ErasureCertificate is what an approved erasure returns: what was
// destroyed, when, by whose decision, and the signed note that says so.
type ErasureCertificate struct {
	Erasure store.Erasure
	// Patient is the patient's keyed hash (Pseudonyms), so that the
	// certificate can be kept and shown without naming the patient.
	Patient     string
	LedgerEntry int64  // the index of the erasure's ledger entry
	Signed      []byte // the certificate as a signed note (ledger.OpenCertificate)
	VerifierKey string // the key that checks Signed
}

// RequestErasure records a request to erase a patient, to be approved by
// a second privacy officer. Errors: ErrForbidden for anyone but a
// privacy officer, ErrStepUp without a fresh second factor, ErrInvalid
// for an unknown reason or legal basis, ErrNotFound for an unknown
// patient, ErrGone for one erased already, ErrConflict under a legal
// hold. The request and its ledger entry commit together; a refusal is
// recorded too.
func (s *Service) RequestErasure(ctx context.Context, c Caller, req ErasureRequest) (store.Erasure, error) {
	e, err := s.requestErasure(ctx, c, req)
	a := access{action: ActionErasureRequest, typ: "Patient"}
	if fhir.ValidID(req.Patient) {
		a.id, a.asked = req.Patient, req.Patient
	}
	return answer(e, s.failed(ctx, c, err, a))
}

func (s *Service) requestErasure(ctx context.Context, c Caller, req ErasureRequest) (store.Erasure, error) {
	if err := s.decideErasure(c, req.FreshMFA, policy.PrivacyRequestErasure); err != nil {
		return store.Erasure{}, err
	}
	if !slices.Contains(ErasureReasons, req.Reason) {
		return store.Erasure{}, invalid("reason must be one of %v", ErasureReasons)
	}
	if !slices.Contains(LegalBases, req.LegalBasis) {
		return store.Erasure{}, invalid("legalBasis must be one of %v", LegalBases)
	}
	if err := s.erasable(ctx, req.Patient); err != nil {
		return store.Erasure{}, err
	}
	now := s.now()
	er := store.Erasure{ID: newID(), Patient: req.Patient, Requester: c.UserID, Reason: req.Reason, LegalBasis: req.LegalBasis, Requested: now}
	e := c.entry(now, ActionErasureRequest)
	e.ResourceType, e.ResourceID, e.Patient, e.Outcome = "Patient", req.Patient, req.Patient, "success"
	e.Detail = er.ID + " " + er.Reason + " " + er.LegalBasis
	if err := s.inLedgerTx(ctx, c, e, func(tx store.Tx) error { return tx.CreateErasure(ctx, er) }); err != nil {
		return store.Erasure{}, err
	}
	return er, nil
}

// ApproveErasure carries out the erasure request id of patient (see
// above). Errors: ErrForbidden for anyone but a privacy officer other
// than the requester, ErrStepUp without a fresh second factor,
// ErrNotFound for an unknown request or one of another patient,
// ErrConflict for one approved already or a patient under a
// legal hold (the error says which hold). A refusal is recorded.
func (s *Service) ApproveErasure(ctx context.Context, c Caller, patient, id string, freshMFA bool) (ErasureCertificate, error) {
	cert, err := s.approveErasure(ctx, c, patient, id, freshMFA)
	a := access{action: ActionErasure, typ: "Patient"}
	if fhir.ValidID(patient) {
		a.id, a.asked = patient, patient
	}
	return answer(cert, s.failed(ctx, c, err, a))
}

func (s *Service) approveErasure(ctx context.Context, c Caller, patient, id string, freshMFA bool) (ErasureCertificate, error) {
	if err := s.decideErasure(c, freshMFA, policy.PrivacyApproveErasure); err != nil {
		return ErasureCertificate{}, err
	}
	if !fhir.ValidID(id) {
		return ErasureCertificate{}, fmt.Errorf("%w: malformed erasure id", ErrNotFound)
	}
	er, err := s.store.Erasure(ctx, id)
	if err != nil {
		return ErasureCertificate{}, storeErr(err)
	}
	if er.Patient != patient {
		return ErasureCertificate{}, fmt.Errorf("%w: no such erasure request for this patient", ErrNotFound)
	}
	switch {
	case !er.Approved.IsZero():
		return ErasureCertificate{}, fmt.Errorf("%w: the erasure was approved already", ErrConflict)
	case er.Requester == c.UserID:
		return ErasureCertificate{}, fmt.Errorf("%w: an erasure is approved by someone other than who asked for it", ErrForbidden)
	}
	if err := s.held(ctx, er.Patient); err != nil {
		return ErasureCertificate{}, err
	}
	// First the key: from here on the compartment is unreadable.
	if err := s.keyring.Erase(ctx, er.Patient); err != nil {
		return ErasureCertificate{}, fmt.Errorf("%w: erasure register: %w", ErrUnavailable, err)
	}
	now := s.now()
	var rec audit.Record
	err = store.ReadWrite(ctx, s.store, func(tx store.Tx) error {
		versions, rows, err := tx.EraseCompartment(ctx, er.Patient, now)
		if err != nil {
			return err
		}
		if er, err = tx.ApproveErasure(ctx, id, c.UserID, now, versions, rows); err != nil {
			return err
		}
		e := c.entry(now, ActionErasure)
		e.ResourceType, e.ResourceID, e.Patient, e.Outcome = "Patient", er.Patient, er.Patient, "success"
		e.Detail = er.ID + " versions=" + strconv.FormatInt(versions, 10) + " index-rows=" + strconv.FormatInt(rows, 10)
		if rec, err = audit.NewRecord(e); err != nil {
			return err
		}
		recs := []audit.Record{rec}
		if err := audit.AppendInTx(ctx, tx, recs); err != nil {
			return err
		}
		rec = recs[0]
		return nil
	})
	if err != nil {
		return ErasureCertificate{}, storeErr(err)
	}
	c.Trail.note()
	s.forgetPatient(er.Patient)
	return s.certify(er, rec.Index)
}

// certify makes an approved erasure's certificate.
func (s *Service) certify(er store.Erasure, entry int64) (ErasureCertificate, error) {
	cert := ErasureCertificate{Erasure: er, Patient: s.cfg.Pseudonyms.Sum(PseudonymPatient, er.Patient), LedgerEntry: entry}
	if s.cfg.Certifier == nil {
		return cert, nil
	}
	signed, err := s.cfg.Certifier.Certify(
		"erasure "+er.ID,
		"patient "+cert.Patient,
		"erased "+er.Approved.UTC().Format(time.RFC3339Nano),
		"requested "+er.Requested.UTC().Format(time.RFC3339Nano)+" by "+er.Requester,
		"approved by "+er.Approver,
		"reason "+er.Reason,
		"legal-basis "+er.LegalBasis,
		"destroyed data-key versions="+strconv.FormatInt(er.Versions, 10)+" index-rows="+strconv.FormatInt(er.IndexRows, 10),
		"ledger-entry "+strconv.FormatInt(entry, 10),
	)
	if err != nil {
		// The erasure is done and recorded; only its certificate is missing.
		return cert, fmt.Errorf("%w: the erasure is done, its certificate could not be signed: %w", ErrUnavailable, err)
	}
	cert.Signed, cert.VerifierKey = signed, s.cfg.Certifier.VerifierKey()
	return cert, nil
}

// PseudonymPatient is the Pseudonyms kind of a patient id in an erasure
// certificate.
const PseudonymPatient = "erased-patient"

// decideErasure asks the policy whether the caller may ask for or approve
// an erasure, and requires a fresh second factor.
func (s *Service) decideErasure(c Caller, fresh bool, a policy.PrivacyAction) error {
	if d := s.policy.DecidePrivacy(c.Subject, fresh, a); !d.Allow {
		if c.UserID != "" && !fresh {
			if role, ok := s.policy.Role(c.Role); ok && role.Review {
				return ErrStepUp
			}
		}
		return fmt.Errorf("%w: %s", ErrForbidden, d.Reason)
	}
	return nil
}

// erasable checks that a patient exists, is not erased and is under no
// legal hold.
func (s *Service) erasable(ctx context.Context, patient string) error {
	if !fhir.ValidID(patient) {
		return invalid("patient must be a patient id")
	}
	if erased, err := s.keyring.Erased(patient); err != nil {
		return fmt.Errorf("%w: erasure register: %w", ErrUnavailable, err)
	} else if erased {
		return fmt.Errorf("%w: the patient was erased", ErrGone)
	}
	row, err := s.store.Current(ctx, "Patient", patient)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no such patient", ErrNotFound)
	case err != nil:
		return storeErr(err)
	case row.Compartment != patient:
		return fmt.Errorf("%w: no such patient", ErrNotFound)
	}
	return s.held(ctx, patient)
}

// held is ErrConflict, naming the hold's reason, for a patient under a
// legal hold.
func (s *Service) held(ctx context.Context, patient string) error {
	h, err := s.store.LegalHold(ctx, patient)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return storeErr(err)
	}
	return fmt.Errorf("%w: the patient is under a legal hold (%s, since %s): it cannot be erased until the hold is released",
		ErrConflict, h.Reason, h.Set.UTC().Format(time.DateOnly))
}

// SetLegalHold places a legal hold on a patient, or with release lifts it,
// with its ledger entry in the same transaction: an operator's command
// (ward patient hold), by names who did it. reason is one of HoldReasons.
// While a hold stands, no erasure of the patient is asked for or approved.
func SetLegalHold(ctx context.Context, st store.Beginner, at time.Time, patient, reason, by string, release bool) error {
	if !fhir.ValidID(patient) {
		return invalid("patient must be a patient id")
	}
	if !release && !slices.Contains(HoldReasons, reason) {
		return invalid("reason must be one of %v", HoldReasons)
	}
	at = at.UTC().Truncate(time.Microsecond)
	e := ledger.Entry{Time: at, Actor: by, Client: by, Action: ActionLegalHold, ResourceType: "Patient", ResourceID: patient, Patient: patient, Outcome: "success", Detail: reason}
	if release {
		e.Action, e.Detail = ActionLegalRelease, ""
	}
	rec, err := audit.NewRecord(e)
	if err != nil {
		return err
	}
	return storeErr(store.ReadWrite(ctx, st, func(tx store.Tx) error {
		var err error
		if release {
			err = tx.ReleaseLegalHold(ctx, patient)
		} else {
			err = tx.SetLegalHold(ctx, store.LegalHold{Patient: patient, Reason: reason, SetBy: by, Set: at})
		}
		if err != nil {
			return err
		}
		return audit.AppendInTx(ctx, tx, []audit.Record{rec})
	}))
}

// ReapplyErasures finishes, in the database, every erasure the key
// provider's register holds: the compartment's versions, index rows and
// wrapped key are deleted where they are still stored (a database copy
// restored from before the erasure, or an approval that failed after the
// register recorded it). It returns how many compartments still held
// data. Each is recorded in the ledger.
func (s *Service) ReapplyErasures(ctx context.Context) (int, error) {
	list, err := s.keyring.Erasures()
	if err != nil {
		return 0, fmt.Errorf("%w: erasure register: %w", ErrUnavailable, err)
	}
	return ReapplyErasures(ctx, s.store, list, s.now())
}

// ReapplyErasures deletes what st still holds of each erased compartment
// (keys.Keyring.Erasures lists them), each with a ledger entry in the
// same transaction, and returns how many still held data. ward restore
// runs it on a restored database, ward serve at every start.
func ReapplyErasures(ctx context.Context, st store.Beginner, erased map[string]time.Time, now time.Time) (int, error) {
	ids := make([]string, 0, len(erased))
	for c := range erased {
		ids = append(ids, c)
	}
	slices.Sort(ids)
	now = now.UTC().Truncate(time.Microsecond)
	n := 0
	for _, compartment := range ids {
		var versions, rows int64
		err := store.ReadWrite(ctx, st, func(tx store.Tx) error {
			var err error
			if versions, rows, err = tx.EraseCompartment(ctx, compartment, now); err != nil || versions == 0 && rows == 0 {
				return err
			}
			rec, err := audit.NewRecord(ledger.Entry{
				Time: now, Actor: "ward", Client: "ward", Action: ActionErasure, ResourceType: "Patient", ResourceID: compartment,
				Patient: compartment, Outcome: "success",
				Detail: "reapplied versions=" + strconv.FormatInt(versions, 10) + " index-rows=" + strconv.FormatInt(rows, 10),
			})
			if err != nil {
				return err
			}
			return audit.AppendInTx(ctx, tx, []audit.Record{rec})
		})
		if err != nil {
			return n, storeErr(err)
		}
		if versions > 0 || rows > 0 {
			n++
		}
	}
	return n, nil
}

// forgetPatient drops what the service's caches hold about an erased
// patient.
func (s *Service) forgetPatient(patient string) {
	s.keyring.Evict(patient)
}
