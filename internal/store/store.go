// Package store is Ward's storage contract: the one interface that every
// database backend implements, and the conformance suite (storetest) that every
// backend must pass.
//
// A store holds only what is safe at rest: sealed resource bodies (opaque
// ciphertext produced by package keys), search index rows whose identifying
// values are already blind-indexed by the caller, wrapped data keys, hashed
// client secrets and, later, ledger rows. A store never sees a key or a
// plaintext resource, and it never logs.
//
// Versioning is optimistic: PutVersion inserts version N+1 of a resource and
// fails with ErrConflict when another writer (in this process or another one
// sharing the database) has already written that version. Callers that hold an
// If-Match precondition surface the conflict; the others re-read and retry. No
// update is ever silently lost.
//
// What the contract does not promise: it does not evaluate FHIR semantics. The
// records service translates FHIR search into Query values; the store executes
// them literally.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on.
var (
	// ErrNotFound means no row matched: unknown resource, version, client or key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means an optimistic write lost a race: the version being
	// written, or a row being created, already exists.
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable wraps failures of the database itself (connection lost,
	// disk full, I/O error). Callers answer 503.
	ErrUnavailable = errors.New("store: unavailable")
)

// Resource is one stored version of a resource. Body is sealed ciphertext and
// is empty for a deletion.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	Compartment string // patient id whose data key sealed Body; "" for the shared key
	Deleted     bool
	LastUpdated time.Time // UTC, microsecond precision
	Body        []byte
	// Sensitivity is a small bit set the records service computes from
	// the version's security labels when it writes it (0: normal data),
	// so that searches can be narrowed by it (Query.Views). The store
	// keeps it as given and gives it no meaning.
	Sensitivity uint8
}

// IndexKind names the shape of an index row and of the predicates that match it.
type IndexKind uint8

// Index kinds. Blind rows hold a keyed hash in Value and match only by equality.
const (
	KindString    IndexKind = iota + 1 // Value: normalised text (lower case, accents folded)
	KindToken                          // System + Value (code)
	KindDate                           // Lo..Hi: unix seconds, inclusive range
	KindNumber                         // Lo..Hi: the value's precision range
	KindQuantity                       // System + Value (unit code) + Lo..Hi
	KindReference                      // Value: "Type/id" or absolute URL; System: target type
	KindURI                            // Value: the URI
	KindBlind                          // Value: blind index (hex); equality only
)

// IndexEntry is one search index row of a resource's current version.
type IndexEntry struct {
	Param  string // search parameter code, e.g. "subject", "code", "name"
	Kind   IndexKind
	System string
	Value  string
	Lo, Hi float64
}

// Op is how a predicate compares against an index row.
type Op uint8

// Predicate operators.
const (
	OpEq       Op = iota + 1 // Value (and System when HasSystem) equal
	OpPrefix                 // Value starts with (strings, case already folded)
	OpContains               // Value contains
	OpRange                  // compare row range [Lo,Hi] with Cmp
	OpMissing                // the parameter has (Missing=false) or lacks (Missing=true) rows
	OpSystem                 // System equal (HasSystem), any Value: a token searched by its system alone ("system|")
)

// Cmp is a FHIR search prefix for ordered kinds (date, number, quantity).
type Cmp uint8

// Comparators; their semantics against a row range [rLo,rHi] and a search
// range [Lo,Hi] follow FHIR R4 3.1.1.4.2.
const (
	CmpEq Cmp = iota + 1 // row range within search range
	CmpNe                // row range not within search range
	CmpGt                // rHi > Hi
	CmpLt                // rLo < Lo
	CmpGe                // rHi >= Lo
	CmpLe                // rLo <= Hi
	CmpSa                // rLo > Hi
	CmpEb                // rHi < Lo
	CmpAp                // ranges overlap (caller widens Lo,Hi)
)

// Predicate matches index rows of one parameter.
type Predicate struct {
	Kind      IndexKind
	Op        Op
	HasSystem bool // for tokens and quantities: System must match (may be "")
	System    string
	Value     string
	Cmp       Cmp // for OpRange on ordered kinds
	Lo, Hi    float64
	Missing   bool // for OpMissing
	Not       bool // :not — the resource has no row matching the rest of the predicate
}

// Clause is a disjunction of predicates on one parameter; a Query's clauses
// are a conjunction.
type Clause struct {
	Param string
	Any   []Predicate
}

// SortKey orders search results by "_id", "_lastUpdated" or a parameter code
// (by the smallest Value, or Lo for ordered kinds).
type SortKey struct {
	Param string
	Kind  IndexKind // for parameter codes: which column orders
	Desc  bool
}

// Query selects current, non-deleted versions of one resource type.
type Query struct {
	Type string
	IDs  []string // _id: any of these
	// AfterID, when not empty, keeps only resources whose id sorts after
	// it in the order a Sort by "_id" gives: keyset paging, whose pages
	// cost the same however deep they are.
	AfterID     string
	Compartment *string // only resources sealed in this compartment
	// Compartments, when not nil, keeps only resources sealed in one of
	// these compartments ("" is the shared key); an empty, non-nil list
	// matches nothing. With Compartment set too, both must hold.
	Compartments []string
	Updated      []Predicate // _lastUpdated, KindDate predicates, all must hold
	Clauses      []Clause
	Sort         []SortKey
	Offset       int
	Count        int  // rows to return; 0 means none (a count-only query)
	Total        bool // also compute the total number of matches
	// Views, when not nil, keeps only resources that one of the views
	// admits (see View); an empty, non-nil list matches nothing. It
	// narrows what Compartment and Compartments keep, never widens it.
	Views []View
}

// View admits the resources of some compartments by their Sensitivity:
// those with no bit outside Sensitivity, and, when Partial is not zero,
// those whose bits outside Sensitivity are all in Partial and that have
// no index row matching Hidden (its Param and any of its predicates,
// which must be positive: no Not, no OpMissing). A view with None set
// admits nothing: it only names compartments, which the views that name
// none then do not cover.
type View struct {
	// Compartments the view covers; nil covers every compartment that no
	// other view of the query names. A compartment named by two views is
	// covered by both.
	Compartments []string
	Sensitivity  uint8
	Partial      uint8
	Hidden       Clause
	None         bool
}

// Page is one page of search results.
type Page struct {
	Resources []Resource
	Total     int  // valid when the query asked for it
	More      bool // at least one more row exists after this page
}

// HistoryQuery selects versions, newest first. Type "" means the whole
// server; ID "" means the whole type.
type HistoryQuery struct {
	Type   string
	ID     string
	Since  time.Time // LastUpdated >= Since; zero: no lower bound
	Before time.Time // LastUpdated < Before; zero: no upper bound (the _at of the snapshot)
	Offset int
	Count  int // versions to return; 0 means none. Page.Total is always set.
}

// WrappedKey is a data key wrapped by a key-encryption key.
type WrappedKey struct {
	Compartment string
	KEKID       string
	Wrapped     []byte
}

// Client is a registered OAuth2 client. The secret is stored only as a hash.
type Client struct {
	ID         string
	Name       string
	SecretHash []byte // nil for a public client (PKCE only, no secret)
	Scopes     []string
	Created    time.Time
	Revoked    bool
	// Suspended is set by containment (Alerts.SetClientSuspended): the
	// client is refused like a revoked one until the suspension is lifted.
	Suspended bool
	// RedirectURIs are the exact redirect URIs of an app that signs people
	// in (authorization code grant); empty for a service client.
	RedirectURIs []string
	// JWKS is the public key set (RFC 7517 JSON) of a service that
	// authenticates with signed assertions (private_key_jwt); nil for
	// others. The store keeps it as given.
	JWKS []byte
	// CertThumbprints are the SHA-256 thumbprints (unpadded base64url, as
	// RFC 8705's x5t#S256) of the certificates a service authenticates
	// with over mutual TLS; empty for others.
	CertThumbprints []string
}

// Active reports whether the client may obtain tokens and use them:
// neither revoked nor suspended.
func (c Client) Active() bool { return !c.Revoked && !c.Suspended }

// HashSize is the size of a ledger tree hash (SHA-256).
const HashSize = 32

// LedgerEntry is one audit ledger entry as stored: its position, its
// canonical encoding (which the ledger package defines and hashes), and
// columns copied out of it so that entries can be found by patient, by
// actor or client, and time.
type LedgerEntry struct {
	Index   int64
	Entry   []byte
	Patient string    // patient compartment id; "" when none
	Time    time.Time // UTC, microsecond precision
	// Actor and Client are the entry's actor and client ids as its
	// encoding holds them; "" when it names none.
	Actor, Client string
	// Patients are the further patients the entry names (a search or
	// history answer with several patients' data). AppendLedger indexes the
	// entry under each distinct non-empty id; reads leave Patients nil (the
	// encoding holds the list).
	Patients []string
}

// LedgerPatientRow is one row of the index that finds a ledger entry under
// a patient it names besides its Patient: AppendLedger writes one per entry
// and distinct non-empty id in its Patients other than its Patient.
type LedgerPatientRow struct {
	Index   int64
	Patient string
	Time    time.Time // the entry's Time as indexed: UTC, microsecond precision
}

// ActorQuery selects ledger entries by who made them, for breach scoping:
// those whose Actor column is Actor, or, when Actor is empty, whose Client
// column is Client (exactly one of the two is set), with Since <= Time <
// Before (a zero bound is open). It is keyset-paged: the next page starts
// with Since set to the last entry's Time and AfterIndex to its Index,
// and then leaves out the entries at exactly Since whose Index is not
// above AfterIndex; a first page sets AfterIndex to -1.
type ActorQuery struct {
	Actor, Client string
	Since, Before time.Time
	AfterIndex    int64
	Count         int
}

// LedgerHash is one stored node hash of the ledger's Merkle tree, at its
// storage index (see golang.org/x/mod/sumdb/tlog's StoredHashIndex).
type LedgerHash struct {
	Index int64
	Hash  [HashSize]byte
}

// LedgerReader reads the audit ledger. The ledger is append-only through
// Tx.AppendLedger; nothing in the contract edits or deletes its rows.
type LedgerReader interface {
	// LedgerSize returns the number of entries.
	LedgerSize(ctx context.Context) (int64, error)
	// LedgerEntries returns the entries with start <= Index < end, in order.
	LedgerEntries(ctx context.Context, start, end int64) ([]LedgerEntry, error)
	// LedgerEntriesByPatient returns the entries naming a patient, in
	// Patient or among Patients, with since <= Time < before (a zero bound
	// is open), oldest first (by Time, then Index), each once, paged by
	// offset/count.
	LedgerEntriesByPatient(ctx context.Context, patient string, since, before time.Time, offset, count int) ([]LedgerEntry, error)
	// LedgerEntriesByActor returns the entries of one actor or client (see
	// ActorQuery), oldest first (by Time, then Index), at most q.Count.
	LedgerEntriesByActor(ctx context.Context, q ActorQuery) ([]LedgerEntry, error)
	// LedgerPatientRows returns the patient index rows of the entries with
	// start <= Index < end (any range with start <= end, so that rows of
	// entries the ledger does not hold can be looked for), ordered by
	// Index, then Patient bytewise, then Time. The offline verifier
	// rebuilds the index from the entries and compares it with these rows.
	LedgerPatientRows(ctx context.Context, start, end int64) ([]LedgerPatientRow, error)
	// LedgerHashes returns the stored hashes at indexes, in the same
	// order; ErrNotFound when any is missing.
	LedgerHashes(ctx context.Context, indexes []int64) ([][HashSize]byte, error)
	// Checkpoint returns the signed checkpoint stored for a tree size, or
	// ErrNotFound. LatestCheckpoint returns the one of the largest size.
	Checkpoint(ctx context.Context, size int64) ([]byte, error)
	LatestCheckpoint(ctx context.Context) (size int64, note []byte, err error)
	// ListCheckpoints calls fn for every stored checkpoint, smallest first.
	ListCheckpoints(ctx context.Context, fn func(size int64, note []byte) error) error
}

// LedgerWriter appends to the ledger inside a transaction. Appending is
// sequenced by the database, not by the process: LockLedger takes a lock
// that every appender in every process sharing the database must take, so
// entries form one gap-free sequence with one tree, however many Ward
// processes write.
type LedgerWriter interface {
	// LockLedger locks the ledger until the transaction ends and returns
	// its size: the index the next appended entry must have.
	LockLedger(ctx context.Context) (size int64, err error)
	// AppendLedger stores entries, whose indexes must run on from the
	// locked size without a gap, and the tree hashes they add. It must
	// follow LockLedger in the same transaction.
	AppendLedger(ctx context.Context, entries []LedgerEntry, hashes []LedgerHash) error
	// MarkSpool records that the entries of a ledger spool up to sequence
	// number folded are in the ledger, in the transaction that appends
	// them. Marks only grow: a lower folded than stored is ErrConflict.
	MarkSpool(ctx context.Context, spool string, folded int64) error
	// PendingEntries returns up to limit entries of the pending table
	// (Pending), oldest first by Time, then Writer, then Seq. Call it after
	// LockLedger, so that processes folding at once do not take the same
	// entries; what another process committed since is seen.
	PendingEntries(ctx context.Context, limit int) ([]PendingEntry, error)
	// DropPending deletes pending entries, in the transaction that appends
	// them to the ledger; keys it does not hold are ErrConflict (another
	// process folded them first), and nothing is deleted.
	DropPending(ctx context.Context, keys []PendingKey) error
}

// PendingEntry is a ledger entry made durable in the pending table before
// it is appended to the ledger: the shared spool of processes on one
// database (package audit, OpenPending).
type PendingEntry struct {
	PendingKey
	Entry LedgerEntry // Index is not stored
	Tag   []byte      // the writer's MAC over the rest
}

// PendingKey names a pending entry: the process that wrote it (a random
// id per process) and its sequence number there.
type PendingKey struct {
	Writer string
	Seq    int64
}

// Pending stores ledger entries durably outside the ledger, each group
// in one statement that commits on its own: processes writing at once do
// not wait for the ledger's lock. LedgerWriter.PendingEntries and
// DropPending fold them into the ledger.
type Pending interface {
	// AddPending stores entries; keys must be new. It returns once they
	// are committed.
	AddPending(ctx context.Context, entries []PendingEntry) error
	// PendingCount returns how many entries wait to be folded.
	PendingCount(ctx context.Context) (int, error)
}

// Spools reads and forgets the marks of ledger spools (see
// LedgerWriter.MarkSpool).
type Spools interface {
	// SpoolMark returns the last folded sequence number of a spool, 0 when
	// none is recorded.
	SpoolMark(ctx context.Context, spool string) (int64, error)
	// ForgetSpool deletes a spool's mark, once its file is gone.
	ForgetSpool(ctx context.Context, spool string) error
}

// Maintenance classifies resource versions stored before the store kept
// their sensitivity class (Resource.Sensitivity): those were given class 0
// whatever their labels, so a search narrowed by class could count them.
type Maintenance interface {
	// SensitivityPending reports whether such versions may exist: true
	// from the schema change that added the class until
	// SensitivityClassified.
	SensitivityPending(ctx context.Context) (bool, error)
	// Unclassified returns up to limit current, non-deleted versions of
	// class 0, in type and id order after (afterType, afterID); "" and ""
	// start at the beginning.
	Unclassified(ctx context.Context, afterType, afterID string, limit int) ([]Resource, error)
	// SetSensitivity sets the class (Resource.Sensitivity) of each of
	// versions, in one transaction, where that version is still the
	// current one; it returns how many were.
	SetSensitivity(ctx context.Context, versions []Resource) (int, error)
	// SensitivityClassified records that every current version has its
	// class.
	SensitivityClassified(ctx context.Context) error

	// IndexRebuildPending reports whether the index rows of stored
	// versions may predate the current indexing rule: true from the
	// schema change that records it until IndexRebuilt.
	IndexRebuildPending(ctx context.Context) (bool, error)
	// CurrentVersions returns up to limit current, non-deleted versions,
	// in type and id order after (afterType, afterID); "" and "" start at
	// the beginning.
	CurrentVersions(ctx context.Context, afterType, afterID string, limit int) ([]Resource, error)
	// ReplaceIndex replaces the index rows of each version, in one
	// transaction, where that version is still the current one; it
	// returns how many were.
	ReplaceIndex(ctx context.Context, versions []Reindexed) (int, error)
	// IndexRebuilt records that every current version's index rows follow
	// the current rule.
	IndexRebuilt(ctx context.Context) error
}

// Reindexed is a version and the index rows it gets.
type Reindexed struct {
	Resource Resource // Type, ID and Version name the version
	Index    []IndexEntry
}

// Store is the storage contract. All methods are safe for concurrent use.
type Store interface {
	Reader
	LedgerReader
	// Begin starts a read-write transaction. The caller must Commit or Rollback.
	Begin(ctx context.Context) (Tx, error)
	// PutCheckpoint stores a signed checkpoint for a tree size; storing the
	// same size again keeps the first.
	PutCheckpoint(ctx context.Context, size int64, note []byte) error
	// AddCosignatures appends signature lines (a witness's cosignatures) to
	// the stored checkpoint of a size, skipping lines it already holds.
	// ErrNotFound when no checkpoint of that size is stored.
	AddCosignatures(ctx context.Context, size int64, lines []byte) error
	// LastLedgerEntryByActor returns the newest entry (by Time, then
	// Index) of one actor or client, as ActorQuery selects them (its
	// Since, Before, AfterIndex and Count are ignored): when someone last
	// used Ward, for access reviews. ErrNotFound when there is none.
	LastLedgerEntryByActor(ctx context.Context, actor, client string) (LedgerEntry, error)

	Keys
	Clients
	Identity
	Emergency
	Erasures
	Retention
	Spools
	Pending
	Maintenance
	Exports
	Alerts
	Signatures

	// Close releases the database.
	Close() error
}

// Reader reads resources outside a transaction.
type Reader interface {
	// Current returns the newest version of a resource, which may be a
	// deletion (Deleted true). ErrNotFound when no version exists.
	Current(ctx context.Context, typ, id string) (Resource, error)
	// Version returns one version. ErrNotFound when absent.
	Version(ctx context.Context, typ, id string, version int64) (Resource, error)
	// Search runs a query over current versions.
	Search(ctx context.Context, q Query) (Page, error)
	// History lists versions, newest first.
	History(ctx context.Context, q HistoryQuery) (Page, error)
}

// Tx is a read-write transaction. A Tx is used by one goroutine.
type Tx interface {
	Reader
	LedgerReader
	LedgerWriter
	// PutVersion writes r as the current version (r.Version must be the
	// previous version + 1, or 1 for a new resource) and replaces the
	// resource's index rows with index (nil for a deletion). ErrConflict when
	// that version already exists.
	PutVersion(ctx context.Context, r Resource, index []IndexEntry) error
	EmergencyWriter
	ErasureWriter
	SignatureWriter
	Commit() error
	Rollback() error
}

// Keys stores wrapped data keys, one per compartment.
type Keys interface {
	// LoadKey returns the wrapped key of a compartment, or ErrNotFound.
	LoadKey(ctx context.Context, compartment string) (WrappedKey, error)
	// CreateKey stores k unless the compartment already has a key; it returns
	// the key that is stored afterwards (k, or the one that won the race).
	CreateKey(ctx context.Context, k WrappedKey) (WrappedKey, error)
	// ListKeys calls fn for every wrapped key.
	ListKeys(ctx context.Context, fn func(WrappedKey) error) error
	// ReplaceKey swaps the wrapped form of a compartment's key if it is still
	// old (compare-and-swap on KEKID and Wrapped); ErrConflict otherwise.
	ReplaceKey(ctx context.Context, old, new WrappedKey) error
}

// Clients stores OAuth2 clients, and the ids of the signed assertions
// they authenticated with, so that an assertion is accepted once across
// every process sharing the database.
type Clients interface {
	CreateClient(ctx context.Context, c Client) error // ErrConflict on a duplicate id
	Client(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	RevokeClient(ctx context.Context, id string) error // ErrNotFound when unknown
	// SetClientSuspended suspends a client or lifts its suspension: a
	// suspended client, like a revoked one, obtains no tokens and its
	// tokens do not verify, but suspension can be lifted. ErrNotFound
	// for an unknown client.
	SetClientSuspended(ctx context.Context, id string, suspended bool) error

	// UseAssertionID records that a client used the assertion id jti,
	// which stays recorded until at least until; ErrConflict when the
	// pair is recorded already (a replay), whichever process recorded it.
	UseAssertionID(ctx context.Context, clientID, jti string, until time.Time) error
	// DeleteAssertionIDs forgets the ids recorded with an until before
	// before.
	DeleteAssertionIDs(ctx context.Context, before time.Time) error

	// ClientAttempts returns the throttling state recorded under key, the
	// zero Attempts when none is.
	ClientAttempts(ctx context.Context, key string) (Attempts, error)
	// SwapClientAttempts replaces the state under key with new if it is
	// still old, whichever process changed it (compare-and-swap);
	// ErrConflict otherwise. A zero new forgets the key. Times are kept
	// to the microsecond.
	SwapClientAttempts(ctx context.Context, key string, old, new Attempts) error
	// DeleteClientAttempts forgets the keys whose LockedUntil is before
	// before.
	DeleteClientAttempts(ctx context.Context, before time.Time) error
}

// Attempts is the throttling state of one credential: how many attempts
// failed in a row and until when no attempt is checked. Package auth keeps
// one per client id submitted at the token endpoint, known or not, under a
// hash of the id, so that every process sharing the store sees the same
// count.
type Attempts struct {
	Failures    int
	LockedUntil time.Time
}

// IsZero reports whether a records nothing.
func (a Attempts) IsZero() bool { return a.Failures == 0 && a.LockedUntil.IsZero() }

// User is a person who signs in to Ward. IDs are never reused: a user is
// disabled, not deleted. Revision increases by one on every UpdateUser and
// makes updates compare-and-swap, so replicas sharing a database cannot
// lose each other's changes (a failed-login count, a used TOTP step).
type User struct {
	ID       string
	Username string // unique; stored as given, compared exactly (callers normalise)
	Role     string
	FHIRUser string // "Practitioner/123", "Patient/abc", "RelatedPerson/x" or ""
	Created  time.Time
	Disabled bool
	Revision int64

	PasswordHash []byte    // argon2id, encoded by package auth
	MFASecret    []byte    // sealed TOTP secret; nil when not enrolled
	MFALastStep  int64     // last accepted TOTP time step (replay protection)
	Recovery     []byte    // hashed recovery codes, encoded by package auth
	WebAuthn     []byte    // sealed WebAuthn credentials, encoded by package auth; nil when none
	Failures     int       // consecutive failed sign-ins
	LockedUntil  time.Time // zero when not locked
	NotBefore    time.Time // tokens issued before this no longer work
	// DisplayName is the person's printed name, shown with every
	// electronic signature they make (21 CFR 11.50); "" when not set.
	DisplayName string
	// Signing is the right to sign records electronically, granted by an
	// administrator once the person's identity is verified (11.100(b))
	// and withdrawn the same way; false by default.
	Signing bool
}

// Session is a person's signed-in browser session. ID is a hash of the
// cookie value; the cookie itself is never stored.
type Session struct {
	ID       string
	UserID   string
	Created  time.Time
	LastSeen time.Time
	AuthTime time.Time // when the password was checked
	MFATime  time.Time // when a second factor was last checked; zero if never
	AMR      []string  // authentication methods used, RFC 8176 ("pwd", "otp")
	Ended    bool
}

// Grant is one authorization a person gave an app within a session: the
// access and refresh tokens issued for it carry its ID, and revoking the
// grant (token revocation, logout, refresh-token reuse) stops all of them.
type Grant struct {
	ID        string
	UserID    string
	ClientID  string
	SessionID string
	Created   time.Time
	Revoked   bool
}

// RefreshToken is one refresh token of a grant, stored by a hash of the
// token. Rotation marks a token used and issues the next; presenting a
// used token again is reuse, and revokes the grant.
type RefreshToken struct {
	ID      string // hash of the token
	GrantID string
	Data    []byte // the token request it continues, encoded by package auth
	Created time.Time
	Expires time.Time
	Used    bool
}

// AuthRequest is an OAuth2 authorization request in flight, between the
// app's redirect to Ward and its exchange of the code. Data is encoded by
// package auth; Code is a hash of the issued code ("" until issued).
type AuthRequest struct {
	ID      string
	Code    string
	Data    []byte
	Expires time.Time
}

// Identity stores users, sessions, grants and OAuth2 protocol state.
// Lookups of unknown ids return ErrNotFound.
type Identity interface {
	CreateUser(ctx context.Context, u User) error // ErrConflict on a duplicate id or username
	User(ctx context.Context, id string) (User, error)
	UserByName(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error) // in username order
	// UpdateUser stores u if the stored revision is still u.Revision, and
	// returns it with Revision+1; ErrConflict when someone updated first.
	// Username, ID and Created never change.
	UpdateUser(ctx context.Context, u User) (User, error)

	CreateSession(ctx context.Context, s Session) error
	Session(ctx context.Context, id string) (Session, error)
	// TouchSession sets LastSeen (and MFATime and AMR when mfa is set).
	TouchSession(ctx context.Context, id string, lastSeen time.Time, mfa *Session) error
	// EndSession ends a session and revokes its grants.
	EndSession(ctx context.Context, id string) error
	// EndUserSessions ends every session of a user and revokes every
	// grant (password change, disabling, lockout by an administrator).
	EndUserSessions(ctx context.Context, userID string) error

	CreateGrant(ctx context.Context, g Grant) error
	Grant(ctx context.Context, id string) (Grant, error)
	RevokeGrant(ctx context.Context, id string) error

	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	RefreshToken(ctx context.Context, id string) (RefreshToken, error)
	// UseRefreshToken marks a token used if it was unused; ErrConflict when
	// it was already used (reuse).
	UseRefreshToken(ctx context.Context, id string) error

	PutAuthRequest(ctx context.Context, r AuthRequest) error // insert or replace
	AuthRequest(ctx context.Context, id string) (AuthRequest, error)
	AuthRequestByCode(ctx context.Context, code string) (AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error
	// DeleteExpired removes auth requests and refresh tokens that expired
	// before now.
	DeleteExpired(ctx context.Context, now time.Time) error
}

// ExportJob is one FHIR Bulk Data export: who started it, where it
// stands, and the wrapped key its files are sealed with. It holds no PHI:
// the request is the kick-off's resource types, _since and group id, and
// Output lists files by resource type and count only.
type ExportJob struct {
	ID      string
	Client  string // the client id that started the job; only it may see the job
	User    string // the person who started it through the client; "" for a service
	Request string // the kick-off request as the manifest echoes it
	State   string // ExportRunning, ExportComplete or ExportFailed
	// Progress and Output are what package bulk reports: counts so far,
	// and the manifest's list of files once complete.
	Progress string
	Output   []byte
	KEKID    string
	Key      []byte // the file key, wrapped by the KEK named KEKID
	Created  time.Time
	Updated  time.Time
	// Expires is when the job and its files are deleted: a running job's
	// deadline, a finished one's end of availability.
	Expires time.Time
}

// Export job states.
const (
	ExportRunning  = "running"
	ExportComplete = "complete"
	ExportFailed   = "failed"
)

// Exports stores export jobs, shared by every process on the database so
// that any of them answers a job's status and cancellation.
type Exports interface {
	// CreateExportJob stores a new job; ErrConflict on a duplicate id.
	CreateExportJob(ctx context.Context, j ExportJob) error
	// ExportJob returns a job, or ErrNotFound.
	ExportJob(ctx context.Context, id string) (ExportJob, error)
	// UpdateExportJob sets the State, Progress, Output, Updated and
	// Expires of a job that is still running; ErrNotFound when it is gone
	// (cancelled or expired), ErrConflict when it is no longer running.
	UpdateExportJob(ctx context.Context, j ExportJob) error
	// DeleteExportJob deletes a job; ErrNotFound when there is none.
	DeleteExportJob(ctx context.Context, id string) error
	// ExpiredExportJobs returns up to limit jobs whose Expires is before
	// before, oldest first.
	ExpiredExportJobs(ctx context.Context, before time.Time, limit int) ([]ExportJob, error)
}
