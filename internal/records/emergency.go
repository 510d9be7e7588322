package records

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Break-the-glass: a person whose role reaches patients through care
// relationships asks for emergency access to one patient outside them,
// with a written reason and purpose of use BTG. The grant reaches that
// patient only, until it expires; Relate puts it in the person's Subject
// (policy.Subject.Emergency) on each request, so the policy widens the
// reach and marks every access as an emergency one. Each grant waits in a
// review queue until a reviewer closes it, once.
//
// The reason and the review note are free text that may name clinical
// facts: they are sealed under the patient's data key, bound to the grant
// (so erasing the patient makes them unreadable too), and never reach an
// audit entry or a log. Entries name the grant by its id.

// Bounds of the free text of a grant and of its review, in characters.
const (
	MaxEmergencyReason = 1000
	MaxReviewNote      = 1000
)

// Review outcomes.
const (
	OutcomeJustified   = "justified"   // the access was warranted
	OutcomeUnjustified = "unjustified" // it was not: follow up with the person
	OutcomeEscalated   = "escalated"   // handed on (incident, management)
)

// Ledger actions of break-the-glass.
const (
	ActionEmergencyGrant  = "emergency-grant"
	ActionEmergencyReview = "emergency-review"
	ActionEmergencyList   = "emergency-list"
)

// EmergencyRequest asks for break-the-glass access to one patient.
type EmergencyRequest struct {
	Patient string
	Reason  string
	Purpose string // must be policy.PurposeBTG
	// FreshMFA says that the caller checked a second factor recently
	// enough for step-up (auth.Principal.FreshMFA).
	FreshMFA bool
}

// ErrStepUp refuses an interaction that needs a recent second factor the
// caller has not checked (RFC 9470 step-up): package api answers 401
// insufficient_user_authentication.
var ErrStepUp = errors.New("records: a fresh second factor is required")

// EmergencyGrant is a break-the-glass grant with its reason and note
// opened. Reason is "" when it can no longer be opened (the patient's data
// key was destroyed).
type EmergencyGrant struct {
	ID       string
	UserID   string
	Patient  string
	Purpose  string
	Reason   string
	Created  time.Time
	Expires  time.Time
	Reviewed time.Time // zero while the grant waits for review
	Reviewer string
	Outcome  string
	Note     string
}

// EmergencyQuery selects one page of the review queue, oldest first.
type EmergencyQuery struct {
	Unreviewed bool
	Offset     int
	Count      int // default 50, at most 200
}

// BreakGlass grants the caller emergency access to one patient for the
// configured time (Config.EmergencyTTL). The caller must have checked a
// fresh second factor. Errors: ErrInvalid for a malformed request,
// ErrConflict when the caller is related to the patient already (no
// emergency access is needed), ErrForbidden when the caller may not break
// the glass (policy.DecideBreakGlass), ErrStepUp without a fresh second
// factor, ErrNotFound for an unknown or deleted patient, in that order.
// The grant and its ledger entry commit together; a refusal is recorded
// with its outcome, naming the patient asked for.
func (s *Service) BreakGlass(ctx context.Context, c Caller, req EmergencyRequest) (EmergencyGrant, error) {
	g, err := s.breakGlass(ctx, c, req)
	a := access{action: ActionEmergencyGrant}
	if fhir.ValidID(req.Patient) {
		a.asked = req.Patient
	}
	if errors.Is(err, ErrStepUp) {
		a.detail = "step-up"
	}
	return answer(g, s.failed(ctx, c, err, a))
}

func (s *Service) breakGlass(ctx context.Context, c Caller, req EmergencyRequest) (EmergencyGrant, error) {
	if !fhir.ValidID(req.Patient) {
		return EmergencyGrant{}, invalid("patient must be a patient id")
	}
	if req.Purpose != policy.PurposeBTG {
		return EmergencyGrant{}, invalid("purposeOfUse must be %s", policy.PurposeBTG)
	}
	reason, err := freeText("reason", req.Reason, MaxEmergencyReason, true)
	if err != nil {
		return EmergencyGrant{}, err
	}
	if _, related := slices.BinarySearch(c.Related, req.Patient); related {
		return EmergencyGrant{}, fmt.Errorf("%w: the patient is within the caller's care relationships", ErrConflict)
	}
	if d := s.policy.DecideBreakGlass(c.Subject, req.Patient); !d.Allow {
		return EmergencyGrant{}, fmt.Errorf("%w: %s", ErrForbidden, d.Reason)
	}
	if !req.FreshMFA {
		return EmergencyGrant{}, ErrStepUp
	}
	row, err := s.store.Current(ctx, "Patient", req.Patient)
	if err != nil {
		return EmergencyGrant{}, storeErr(err)
	}
	if row.Deleted {
		return EmergencyGrant{}, fmt.Errorf("%w: the patient is deleted", ErrNotFound)
	}
	now := s.now()
	g := store.EmergencyGrant{
		ID: newID(), UserID: c.UserID, Patient: req.Patient, Purpose: policy.PurposeBTG,
		Created: now, Expires: now.Add(s.cfg.EmergencyTTL),
	}
	if g.Reason, err = s.sealText(ctx, g, "reason", reason); err != nil {
		return EmergencyGrant{}, err
	}
	e := c.entry(now, ActionEmergencyGrant)
	e.Patient, e.Outcome, e.Purpose, e.Detail = g.Patient, "success", policy.PurposeBTG, g.ID
	repeats, err := s.earlierGrants(ctx, e.Actor, g.Patient, now)
	if err != nil {
		return EmergencyGrant{}, err
	}
	if repeats > 0 {
		e.Detail += " " + RepeatedGrant + strconv.Itoa(repeats)
	}
	err = s.inLedgerTx(ctx, c, e, func(tx store.Tx) error { return tx.CreateEmergencyGrant(ctx, g) })
	if err != nil {
		return EmergencyGrant{}, err
	}
	return EmergencyGrant{ID: g.ID, UserID: g.UserID, Patient: g.Patient, Purpose: g.Purpose, Reason: reason, Created: g.Created, Expires: g.Expires}, nil
}

// RepeatedGrant flags the entry of a break-the-glass grant for a patient
// the same person was granted before within RepeatWindow; the number of
// those earlier grants follows it ("repeat=2").
const RepeatedGrant = "repeat="

// RepeatWindow is how far back a grant looks for earlier grants to the
// same person for the same patient.
const RepeatWindow = 30 * 24 * time.Hour

// earlierGrants counts the grants actor was given for patient within
// RepeatWindow before now.
func (s *Service) earlierGrants(ctx context.Context, actor, patient string, now time.Time) (int, error) {
	n, err := s.store.CountEmergencyGrants(ctx, actor, patient, now.Add(-RepeatWindow), now.Add(time.Microsecond))
	return n, storeErr(err)
}

// EmergencyGrants lists the review queue. The caller must have been
// allowed policy.PrivacyListEmergency. The list shows each grant's
// reason, so its entry names the patients listed.
func (s *Service) EmergencyGrants(ctx context.Context, c Caller, q EmergencyQuery) ([]EmergencyGrant, bool, error) {
	grants, more, err := s.emergencyGrants(ctx, q)
	patients := make([]string, 0, len(grants))
	for _, g := range grants {
		patients = append(patients, g.Patient)
	}
	if err := s.account(ctx, c, err, access{action: ActionEmergencyList, query: c.Query, patients: patients, listed: true}); err != nil {
		return nil, false, err
	}
	return grants, more, nil
}

func (s *Service) emergencyGrants(ctx context.Context, q EmergencyQuery) ([]EmergencyGrant, bool, error) {
	switch {
	case q.Count == 0:
		q.Count = 50
	case q.Count < 0 || q.Count > 200:
		return nil, false, invalid("_count must be between 1 and 200")
	}
	if q.Offset < 0 {
		return nil, false, invalid("_offset must not be negative")
	}
	rows, more, err := s.store.ListEmergencyGrants(ctx, store.EmergencyQuery{Unreviewed: q.Unreviewed, Offset: q.Offset, Count: q.Count})
	if err != nil {
		return nil, false, storeErr(err)
	}
	out := make([]EmergencyGrant, 0, len(rows))
	for _, g := range rows {
		v, err := s.openGrant(ctx, g)
		if err != nil {
			return nil, false, err
		}
		out = append(out, v)
	}
	return out, more, nil
}

// ReviewEmergency closes a grant with an outcome and an optional note. The
// caller must have been allowed policy.PrivacyReviewEmergency. Errors:
// ErrNotFound for an unknown grant, ErrConflict when it was reviewed
// already, ErrForbidden for a review of one's own grant, ErrInvalid for a
// malformed outcome or note. The review and its ledger entry commit
// together; a refusal is recorded with its outcome.
func (s *Service) ReviewEmergency(ctx context.Context, c Caller, id, outcome, note string) (EmergencyGrant, error) {
	g, err := s.reviewEmergency(ctx, c, id, outcome, note)
	return answer(g, s.failed(ctx, c, err, access{action: ActionEmergencyReview, id: id}))
}

func (s *Service) reviewEmergency(ctx context.Context, c Caller, id, outcome, note string) (EmergencyGrant, error) {
	switch outcome {
	case OutcomeJustified, OutcomeUnjustified, OutcomeEscalated:
	default:
		return EmergencyGrant{}, invalid("outcome must be %s, %s or %s", OutcomeJustified, OutcomeUnjustified, OutcomeEscalated)
	}
	note, err := freeText("note", note, MaxReviewNote, false)
	if err != nil {
		return EmergencyGrant{}, err
	}
	if !fhir.ValidID(id) {
		return EmergencyGrant{}, fmt.Errorf("%w: malformed grant id", ErrNotFound)
	}
	g, err := s.store.EmergencyGrant(ctx, id)
	if err != nil {
		return EmergencyGrant{}, storeErr(err)
	}
	if c.UserID == "" || g.UserID == c.UserID {
		return EmergencyGrant{}, fmt.Errorf("%w: a grant is reviewed by someone other than its holder", ErrForbidden)
	}
	var sealed []byte
	if note != "" {
		if sealed, err = s.sealText(ctx, g, "note", note); err != nil {
			return EmergencyGrant{}, err
		}
	}
	now := s.now()
	e := c.entry(now, ActionEmergencyReview)
	e.Patient, e.Outcome, e.Detail = g.Patient, "success", g.ID+" "+outcome
	err = s.inLedgerTx(ctx, c, e, func(tx store.Tx) error {
		var err error
		g, err = tx.ReviewEmergencyGrant(ctx, id, now, c.UserID, outcome, sealed)
		return err
	})
	if err != nil {
		return EmergencyGrant{}, err
	}
	return s.openGrant(ctx, g)
}

// EmergencyGrant returns the id of the caller's active break-the-glass
// grant that reaches patient, when the caller reaches patient only through
// it (not through a care relationship): each access to that patient's
// data must then be recorded with purpose of use BTG, naming the grant.
func (c Caller) EmergencyGrant(patient string) (string, bool) {
	id, ok := c.Grants[patient]
	if !ok || patient == "" {
		return "", false
	}
	if _, related := slices.BinarySearch(c.Related, patient); related {
		return "", false
	}
	return id, true
}

// MarkEmergency records in e that it accounts for access through the
// caller's break-the-glass grants, when any of patients is reached only
// through one: purpose of use BTG, and the grants' ids added to the
// detail ("btg-grant=id[,id]"). It returns those patients, sorted and
// distinct, for the security events the caller raises (Grants names each
// one's grant).
func (c Caller) MarkEmergency(e *ledger.Entry, patients ...string) []string {
	if len(c.Grants) == 0 {
		return nil
	}
	var reached []string
	for _, p := range patients {
		if _, ok := c.EmergencyGrant(p); ok {
			reached = append(reached, p)
		}
	}
	if len(reached) == 0 {
		return nil
	}
	slices.Sort(reached)
	reached = slices.Compact(reached)
	ids := make([]string, len(reached))
	for i, p := range reached {
		ids[i] = c.Grants[p]
	}
	slices.Sort(ids)
	e.Purpose = policy.PurposeBTG
	e.Detail = strings.TrimSpace(e.Detail + " btg-grant=" + strings.Join(slices.Compact(ids), ","))
	return reached
}

// relateEmergency fills the caller's break-the-glass grants active now.
// They are read on every request, from the store that every replica
// shares, so a grant takes effect at once everywhere and ends exactly at
// its expiry.
func (s *Service) relateEmergency(ctx context.Context, c *Caller) error {
	grants, err := s.store.ActiveEmergencyGrants(ctx, c.UserID, s.now())
	if err != nil {
		return storeErr(err)
	}
	if len(grants) == 0 {
		return nil
	}
	c.Grants = make(map[string]string, len(grants))
	patients := make([]string, 0, len(grants))
	for _, g := range grants { // oldest first: the newest grant names the patient's access
		c.Grants[g.Patient] = g.ID
		patients = append(patients, g.Patient)
	}
	slices.Sort(patients)
	c.Emergency = slices.Compact(patients)
	return nil
}

// inLedgerTx runs fn and appends e, c's entry, in one transaction: both
// commit or neither does (invariant 3).
func (s *Service) inLedgerTx(ctx context.Context, c Caller, e ledger.Entry, fn func(tx store.Tx) error) error {
	rec, err := audit.NewRecord(e)
	if err != nil {
		return fmt.Errorf("records: audit entry: %w", err)
	}
	err = store.ReadWrite(ctx, s.store, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return audit.AppendInTx(ctx, tx, []audit.Record{rec})
	})
	if err != nil {
		return storeErr(err)
	}
	c.Trail.note()
	return nil
}

// grantAAD binds a grant's sealed text to the grant, the field and the
// patient. "EmergencyGrant.reason" is no resource type, so it cannot be
// confused with a resource body's associated data.
func grantAAD(g store.EmergencyGrant, field string) keys.AAD {
	return keys.AAD{Type: "EmergencyGrant." + field, ID: g.ID, Compartment: g.Patient}
}

func (s *Service) sealText(ctx context.Context, g store.EmergencyGrant, field, text string) ([]byte, error) {
	dk, err := s.keyring.DataKey(ctx, g.Patient)
	if err != nil {
		return nil, storeErr(err)
	}
	sealed, err := dk.Seal(grantAAD(g, field), []byte(text))
	if err != nil {
		return nil, fmt.Errorf("records: seal grant %s: %w", field, err)
	}
	return sealed, nil
}

// openText opens a grant's sealed text; "" when the patient's key no
// longer opens it.
func (s *Service) openText(ctx context.Context, g store.EmergencyGrant, field string, sealed []byte) (string, error) {
	if sealed == nil {
		return "", nil
	}
	dk, err := s.keyring.DataKey(ctx, g.Patient)
	if errors.Is(err, keys.ErrErased) {
		return "[erased with the patient's record]", nil
	}
	if err != nil {
		return "", storeErr(err)
	}
	text, err := dk.Open(grantAAD(g, field), sealed)
	if errors.Is(err, keys.ErrDecrypt) {
		return "", nil
	}
	if err != nil {
		return "", storeErr(err)
	}
	return string(text), nil
}

func (s *Service) openGrant(ctx context.Context, g store.EmergencyGrant) (EmergencyGrant, error) {
	reason, err := s.openText(ctx, g, "reason", g.Reason)
	if err != nil {
		return EmergencyGrant{}, err
	}
	note, err := s.openText(ctx, g, "note", g.Note)
	if err != nil {
		return EmergencyGrant{}, err
	}
	return EmergencyGrant{
		ID: g.ID, UserID: g.UserID, Patient: g.Patient, Purpose: g.Purpose, Reason: reason,
		Created: g.Created, Expires: g.Expires, Reviewed: g.Reviewed, Reviewer: g.Reviewer, Outcome: g.Outcome, Note: note,
	}, nil
}

// freeText checks a free-text field: valid UTF-8, at most max characters,
// no control characters but line breaks and tabs; surrounding white space
// is dropped.
func freeText(name, s string, max int, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case !utf8.ValidString(s):
		return "", invalid("%s must be UTF-8 text", name)
	case s == "" && required:
		return "", invalid("%s is required", name)
	case utf8.RuneCountInString(s) > max:
		return "", invalid("%s must be at most %d characters", name, max)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }):
		return "", invalid("%s must not hold control characters", name)
	}
	return s, nil
}
