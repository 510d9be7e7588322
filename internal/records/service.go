// Package records is Ward's records service: the one place where a FHIR
// interaction becomes a storage transaction.
//
// Every operation takes the caller's policy.Subject and asks policy.Decide
// before it touches data (DESIGN invariant 2). Writes validate the resource,
// extract its search index values, replace identifying values with blind
// indexes, seal the body under the patient compartment's data key with the
// resource's type, id, version and compartment as associated data, and write
// version and index rows in one transaction (invariants 5 and 6). Reads open
// the sealed body with the same binding, so a ciphertext moved to another
// row does not decrypt.
//
// A Decision's compartment obligation (a patient/ scope: "only within this
// patient's compartment") is enforced here, on every path that reads or
// writes a resource:
//   - read, vread and instance history of a resource sealed outside the
//     compartment answer ErrNotFound, as an unknown id does, even when it is
//     deleted; an instance history answers so unless every version is in
//     the compartment;
//   - searches, conditional matches, _revinclude and $everything narrow the
//     storage query itself to the compartment, so totals and pages never
//     count another patient; _include reads each target as a read would;
//   - $everything is only for the compartment's own patient, and the
//     shared resources its record refers to are each read as a read would
//     be (so, under an obligation, none is added);
//   - a patch (JSON Patch or FHIRPath Patch, alone or as a bundle entry)
//     is applied to the version as the caller reads it and stored as an
//     update of that version, held to the write rule below;
//   - a bulk export (export.go) walks each type as a search does, narrowed
//     to the compartments the Decision reaches (and a Group's members),
//     and leaves out shared resources at the Patient level;
//   - a write (create, update, conditional create or update, delete, and
//     transaction and batch entries) is ErrForbidden, with nothing written,
//     unless the resource's compartment and every patient it refers to
//     through its compartment parameters is the obligation's patient, and
//     the current version stored under its id, if any (deleted or not), is
//     in that compartment; a write's Provenance (WithProvenance,
//     provenance.go) is sealed in the compartment of the resource it is
//     about and held to the same rule;
//   - shared resources (Organization, Practitioner, Medication, ...) are
//     outside every patient's compartment: not there for reads and
//     searches, ErrForbidden for writes;
//   - type and system history, and AuditEvent reads, cannot be narrowed to
//     a compartment yet and are ErrForbidden under an obligation.
//
// A Decision's mask (elements the subject's role never sees, such as the
// practitioner role's social security numbers) is kept on every path too:
// each version a caller is served, through every interaction, is masked
// under the Decision that allowed it, searches and conditional criteria
// may not match or sort on it, and a masked writer neither sets nor erases
// what it cannot see (mask.go).
//
// Every interaction is recorded here, served or refused (trail.go): a
// write's ledger entry commits in its transaction, every other entry goes
// through group commit before the interaction returns (a bulk export's,
// naming every patient it disclosed, once its walk ends), and an
// interaction whose entry cannot be made durable fails with
// ErrUnavailable and hands nothing on (DESIGN invariant 3).
//
// What it does not do: HTTP. Errors are values that package api maps to
// status codes and OperationOutcomes; the sentinel errors below are what it
// branches on.
package records

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Errors callers branch on. Each maps to one HTTP status in package api.
var (
	ErrNotFound     = errors.New("records: not found")           // 404; also what a forbidden read looks like
	ErrGone         = errors.New("records: deleted")             // 410
	ErrForbidden    = errors.New("records: forbidden")           // 403
	ErrPrecondition = errors.New("records: precondition failed") // 412
	ErrConflict     = errors.New("records: conflict")            // 409
	ErrInvalid      = errors.New("records: invalid request")     // 400
	ErrUnavailable  = errors.New("records: unavailable")         // 503
	ErrTooCostly    = errors.New("records: request too large")   // 413
)

// Config holds the service's limits. Zero values mean the defaults.
type Config struct {
	Policy           policy.Policy // roles; the zero Policy has the built-in ones
	MaxBundleEntries int           // default 1000
	MaxIncludes      int           // resources added by _include/_revinclude per page; default 500
	MaxChainMatches  int           // resources one hop of a chained parameter or _has may match; default 1000
	WriteRetries     int           // retries of a write that lost an optimistic race; default 5
	Search           search.Limits // paging and query limits
	EmergencyTTL     time.Duration // lifetime of a break-the-glass grant; default 60 minutes
	Now              func() time.Time
	// Ledger records the entries of interactions that commit no write
	// (trail.go). Without one every such interaction fails with
	// ErrUnavailable: nothing is served unrecorded.
	Ledger Appender
	// Pseudonyms makes the keyed hashes entries record in place of query
	// parameter names outside the names' alphabet, and erasure
	// certificates in place of the patient's id; default
	// RandomPseudonyms.
	Pseudonyms Pseudonyms
	// Certifier signs erasure certificates (ledger.Certifier); without
	// one a certificate is returned unsigned.
	Certifier Certifier
	// Endpoints admits the endpoints of Subscriptions when they are
	// written (subscription.go); without one, no Subscription is.
	Endpoints EndpointChecker
	// MaxSubscriptions is how many Subscriptions that are not off one
	// client may hold; a create or a re-activation beyond it is refused
	// (ErrConflict). Each written resource adds one outbox row per
	// matching subscription, so the cap bounds what one client can make
	// every write cost. Default 20.
	MaxSubscriptions int
	// Enqueued, when set, is called after a write committed outbox rows
	// for subscriptions, so that a dispatcher may look at once.
	Enqueued func()
	// ESigner signs electronic signatures (esign.go): the e-signature
	// key, used for nothing else; without one nothing is signed
	// (ErrUnavailable). ESignKeys verify them: its public key and those
	// of keys rotated out.
	ESigner   crypto.Signer
	ESignKeys esign.Keys
	// ESignSource, when set, replaces ESigner and ESignKeys: it is asked
	// at each signing for the key in force and at each verification for
	// every key kept, so that a rotation of the e-signature key (ward keys
	// rotate --kind esign) takes effect without a restart while what the
	// retired keys signed keeps verifying (a signature names its key).
	ESignSource ESignSource
}

// ESignSource holds the e-signature keys (keys.LocalFile).
type ESignSource interface {
	ESignSigner() (crypto.Signer, error)
	ESignKeys() ([]ed25519.PublicKey, error)
}

func (c *Config) fill() {
	if c.MaxBundleEntries <= 0 {
		c.MaxBundleEntries = 1000
	}
	if c.MaxIncludes <= 0 {
		c.MaxIncludes = 500
	}
	if c.MaxChainMatches <= 0 {
		c.MaxChainMatches = MaxChainMatches
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 20
	}
	if c.WriteRetries <= 0 {
		c.WriteRetries = 5
	}
	if c.EmergencyTTL <= 0 {
		c.EmergencyTTL = 60 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Ledger == nil {
		c.Ledger = noLedger{}
	}
	if c.Pseudonyms == nil {
		c.Pseudonyms = RandomPseudonyms()
	}
}

// noLedger is the Ledger of a service configured without one: it records
// nothing, so every interaction that needs it fails.
type noLedger struct{}

func (noLedger) Append(context.Context, ...audit.Record) error {
	return errors.New("records: no audit ledger is configured")
}

// Store is what the records service needs of the storage contract: it
// reads resources, the ledger (for the AuditEvent view and patients'
// access logs), accounts (who made an entry) and emergency grants,
// writes through transactions that commit each write with its ledger
// entry, and runs the maintenance of stored versions. Every store.Store
// is one.
type Store interface {
	store.Reader
	store.Beginner
	store.Emergency
	store.Erasures
	store.Maintenance
	LedgerSize(ctx context.Context) (int64, error)
	LedgerEntries(ctx context.Context, start, end int64) ([]store.LedgerEntry, error)
	LedgerEntriesByPatient(ctx context.Context, patient string, since, before time.Time, offset, count int) ([]store.LedgerEntry, error)
	// User names the person behind an entry in a patient's access log.
	User(ctx context.Context, id string) (store.User, error)
	// Subscription and Client are a subscription's delivery state and
	// its owning client (subscription.go).
	Subscription(ctx context.Context, id string) (store.Subscription, error)
	Client(ctx context.Context, id string) (store.Client, error)
	// The ledger's checkpoints and hashes prove signings (esign.go); the
	// signature rows list a resource's signatures.
	store.LedgerReader
	Signatures(ctx context.Context, typ, id string) ([]store.SignatureRow, error)
}

// Service executes FHIR interactions.
type Service struct {
	cfg       Config
	store     Store
	keyring   *keys.Keyring
	blind     *keys.BlindIndex
	params    *search.Registry
	validator *fhir.Validator
	policy    policy.Policy
	relations relationsCache
	masks     maskCache
	consents  consentCache
}

// New returns a records service over its dependencies.
func New(cfg Config, st Store, kr *keys.Keyring, blind *keys.BlindIndex, params *search.Registry, v *fhir.Validator) *Service {
	cfg.fill()
	return &Service{cfg: cfg, store: st, keyring: kr, blind: blind, params: params, validator: v, policy: cfg.Policy}
}

// Policy returns the policy the service decides with.
func (s *Service) Policy() policy.Policy { return s.policy }

// Params returns the search parameter registry the service uses.
func (s *Service) Params() *search.Registry { return s.params }

// Entry is one version of a resource as the caller sees it. Body is the
// plaintext resource JSON, nil for a deletion.
type Entry struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	Body        []byte
	Compartment string // the patient compartment it is sealed in; "" for shared

	// stored is the body as stored when a mask changed Body: its security
	// labels are the version's own (labels.go). Never served.
	stored []byte
}

// labelled is the body whose security labels are the version's.
func (e Entry) labelled() []byte {
	if e.stored != nil {
		return e.stored
	}
	return e.Body
}

// Location is "Type/id/_history/version".
func (e Entry) Location() string {
	return fmt.Sprintf("%s/%s/_history/%d", e.Type, e.ID, e.Version)
}

// decide asks the policy decision point; a denial is ErrForbidden. An
// allowed Decision may carry a compartment obligation, which the caller
// must enforce (see within, hidden and narrow).
func (s *Service) decide(sub policy.Subject, action policy.Action, typ string) (policy.Decision, error) {
	d := s.policy.Decide(sub, policy.Request{Action: action, Type: typ})
	if !d.Allow {
		return d, fmt.Errorf("%w: %s", ErrForbidden, d.Reason)
	}
	return d, nil
}

// within reports whether an allowed Decision d covers a resource version
// sealed in compartment: always without an obligation, otherwise only in
// the obligation's own compartment. A shared resource (compartment "") is
// outside every patient's compartment.
func within(d policy.Decision, compartment string) bool {
	return d.Reaches(compartment)
}

// hidden is what a resource outside the caller's compartment answers:
// ErrNotFound, as an unknown id, so package api gives it the same status
// and body (DESIGN invariant 10). Only the server's log sees the cause.
func hidden() error { return ErrHidden }

// hiddenIn is hidden for a stored resource sealed in compartment: a
// *HiddenError naming it, for the audit entry.
func hiddenIn(compartment string) error { return &HiddenError{Compartment: compartment} }

// ErrHidden is the error of an access outside the caller's compartment. It
// is an ErrNotFound, so the caller sees an unknown id; the audit entry
// records it as denied.
var ErrHidden = fmt.Errorf("%w: outside the caller's patient compartment", ErrNotFound)

// HiddenError is ErrHidden for a resource that exists: Compartment is the
// patient compartment it is sealed in ("" for a shared resource). The
// audit entry names that patient, so that the patient's access report
// shows the attempt (catalogue H1); the caller never sees it, and gets
// the answer of an unknown id.
type HiddenError struct {
	Compartment string
}

// Error is ErrHidden's text: it never names the compartment.
func (e *HiddenError) Error() string { return ErrHidden.Error() }

// Unwrap makes a HiddenError an ErrHidden, and so an ErrNotFound.
func (e *HiddenError) Unwrap() error { return ErrHidden }

// narrow limits a storage query to d's compartment, if d has one.
func narrow(d policy.Decision, q *store.Query) {
	if d.Restricted() {
		list := d.Patients
		if d.Shared {
			list = append(slices.Clip(list), "")
		}
		q.Compartments = list
	}
}

// errNoCompartmentView refuses an interaction that a compartment
// obligation cannot be enforced on yet.
func errNoCompartmentView(what string) error {
	return fmt.Errorf("%w: %s is not available within a patient compartment", ErrForbidden, what)
}

// idEncoding is base32 with its alphabet in ASCII order, so encoded ids sort
// as their bytes do.
var idEncoding = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// newID returns a new resource id: 26 characters encoding 48 bits of
// milliseconds since the epoch followed by 80 random bits. The time prefix
// makes ids from one period sort together, so the database's id-keyed
// B-trees grow at their right edge instead of dirtying pages everywhere;
// the random part keeps ids unguessable. An id reveals its creation time,
// which meta.lastUpdated states anyway.
func newID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic("records: crypto/rand failed: " + err.Error())
	}
	return idEncoding.EncodeToString(b[:])
}

// storeErr translates storage and key errors into the service's errors.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, keys.ErrErased):
		return fmt.Errorf("%w: the patient's record was erased", ErrGone)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, keys.ErrUnavailable):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return err
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// splitTypeID splits "Type/id".
func splitTypeID(s string) (typ, id string, ok bool) {
	typ, id, ok = strings.Cut(s, "/")
	return typ, id, ok && fhir.IsResourceType(typ) && fhir.ValidID(id)
}

// Caller is who asks, and through which request: what the policy decides
// on and what the audit entry records.
type Caller struct {
	policy.Subject
	RequestID string
	Source    string // the client's network address
	Purpose   string // purpose of use, when the caller states one
	// Grants are the caller's active break-the-glass grants: the grant id
	// by patient, for the patients in Subject.Emergency (Relate fills
	// both).
	Grants map[string]string
	// Query are the names of the request's query parameters as its entry
	// records them (QueryNames).
	Query []string
	// Trail learns whether the service recorded the request's entries;
	// nil when nobody asks.
	Trail *Trail
	// Token identifies the bearer token the request presented in its
	// entries: a keyed hash of its jti (PseudonymToken), "" for none.
	Token string
}

// entry starts the ledger entry of an interaction of c's at now: who,
// from where, with which token, why and in which request.
func (c Caller) entry(now time.Time, action string) ledger.Entry {
	return ledger.Entry{
		Time: now, Actor: cmp.Or(c.UserID, c.ClientID), Client: c.ClientID, Source: c.Source, Action: action,
		Purpose: c.Purpose, RequestID: c.RequestID, Token: c.Token,
	}
}
