package records

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// FHIR R4 Subscriptions with the rest-hook channel. The rules, path by
// path:
//
//   - A Subscription belongs to the service that created it (its client
//     id, kept in the subscriptions table and as a meta.tag of system
//     OwnerTagSystem that Ward sets and a writer cannot). Only services
//     create them (a person's token, or one limited to patients, is
//     ErrForbidden), only with POST (CreateSubscription, which returns the
//     signing secret once), and only their owner reads, searches, updates
//     or deletes them: to anyone else they answer as unknown ids.
//   - Its criteria ("Observation?code=...") must be a search the owner
//     may run now; its channel must be rest-hook with an https endpoint
//     that the configured EndpointChecker admits (catalogue C6: no
//     loopback, link-local, private or other special address unless an
//     operator allow-lists it); channel.header is refused, and payload is
//     absent or application/fhir+json.
//   - status is Ward's: a writer may ask for off; anything else becomes
//     requested, and delivery moves it to active or error, with a fixed
//     error text (never PHI), both shown on every read of it.
//   - Every other write of a resource version adds an outbox row for
//     each live subscription on its type, in the write's own transaction
//     (a crash after commit loses no notification). Whether the version
//     matches the criteria is decided at delivery (Notification), as the
//     owner: the criteria run as a search of the owner's, with its
//     scopes as granted when it wrote the subscription and still
//     registered for its client, so a subscription never tells its owner
//     about a resource the owner could not find by searching. A deletion
//     notifies no one.
//   - Every delivery attempt is a ledger entry (action "notify") naming
//     the owner, the resource, its patient and the subscription, durable
//     before anything is sent.

// OwnerTagSystem is the system of the meta.tag that names a
// Subscription's owning client.
const OwnerTagSystem = "urn:ward:subscription-owner"

const subscriptionType = "Subscription"

// ActionNotify is the action of the ledger entry of a delivery attempt.
const ActionNotify = "notify"

// ErrNoDelivery is Notification's answer when there is nothing to send:
// the subscription is off or gone, its owner can no longer run its
// criteria, or the version does not match them.
var ErrNoDelivery = errors.New("records: nothing to deliver")

// EndpointChecker admits or refuses a subscription's endpoint when it is
// written: a refusal is the writer's bad input (400). The dispatcher
// checks every address again when it dials.
type EndpointChecker interface {
	CheckEndpoint(ctx context.Context, endpoint *url.URL) error
}

// SubscriptionSecret is a subscription's signing key. It never prints;
// Text gives it out once, to the creator.
type SubscriptionSecret struct{ b []byte }

// String redacts the secret.
func (SubscriptionSecret) String() string { return "[redacted]" }

// GoString redacts the secret.
func (SubscriptionSecret) GoString() string { return "[redacted]" }

// Text is the secret as the creator receives it: unpadded base64url.
func (s SubscriptionSecret) Text() string { return base64.RawURLEncoding.EncodeToString(s.b) }

// MAC returns an HMAC-SHA256 under the secret.
func (s SubscriptionSecret) MAC() hash.Hash { return hmac.New(sha256.New, s.b) }

// IsZero reports whether there is no secret.
func (s SubscriptionSecret) IsZero() bool { return len(s.b) == 0 }

// ParseSubscriptionSecret reads a secret in Text's form.
func ParseSubscriptionSecret(text string) (SubscriptionSecret, error) {
	b, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(b) != 32 {
		return SubscriptionSecret{}, errors.New("records: a subscription secret is 32 bytes in unpadded base64url")
	}
	return SubscriptionSecret{b: b}, nil
}

// secretAAD binds a sealed secret to its subscription; its type is no
// resource type, so it never opens as a body or a body as it.
func secretAAD(id string) keys.AAD {
	return keys.AAD{Type: "Subscription#secret", ID: id}
}

// subscriptionSpec is what Ward reads of a Subscription body.
type subscriptionSpec struct {
	typ      string // the criteria's resource type
	query    string // the criteria's query, without '?'
	endpoint *url.URL
	payload  string // "" or "application/fhir+json"
	off      bool   // the writer asked for status off
}

// resultParams are search parameters that shape a result, not select it:
// meaningless in criteria.
var resultParams = []string{"_include", "_revinclude", "_sort", "_count", "_summary", "_elements", "_total", "_contained", "_containedType"}

// parseSubscription reads and checks a Subscription body (already valid
// R4) as the criteria a subject may run.
func (s *Service) parseSubscription(ctx context.Context, sub policy.Subject, res *fhir.Resource) (subscriptionSpec, error) {
	var sp subscriptionSpec
	status, _ := res.Object["status"].(string)
	sp.off = status == store.SubscriptionOff
	criteria, _ := res.Object["criteria"].(string)
	typ, query, _ := strings.Cut(criteria, "?")
	if !fhir.IsResourceType(typ) || typ == subscriptionType || typ == policy.AuditType {
		return sp, invalid("Subscription.criteria must start with a resource type other than Subscription and AuditEvent")
	}
	params, err := search.ParseParams(query)
	if err != nil {
		return sp, fmt.Errorf("%w: Subscription.criteria: %w", ErrInvalid, err)
	}
	for name := range params {
		base, _, _ := strings.Cut(name, ":")
		if slices.Contains(resultParams, base) {
			return sp, invalid("Subscription.criteria may not use %s", base)
		}
	}
	d, err := s.decide(sub, policy.ActionSearch, typ)
	if err != nil {
		return sp, fmt.Errorf("%w: Subscription.criteria: the client may not search %s", ErrForbidden, typ)
	}
	q, err := s.params.ParseQuery(typ, params, s.cfg.Search)
	if err != nil {
		return sp, fmt.Errorf("%w: Subscription.criteria: %w", ErrInvalid, err)
	}
	if len(q.Composites) > 0 {
		return sp, invalid("Subscription.criteria cannot hold composite parameters or :of-type")
	}
	if err := s.guardQuery(d, q); err != nil {
		return sp, err
	}
	sp.typ, sp.query = typ, query
	channel, _ := res.Object["channel"].(map[string]any)
	if t, _ := channel["type"].(string); t != "rest-hook" {
		return sp, invalid("Subscription.channel.type must be rest-hook")
	}
	if _, ok := channel["header"]; ok {
		return sp, invalid("Subscription.channel.header is not supported: Ward signs every notification with the subscription's secret")
	}
	switch p, _ := channel["payload"].(string); p {
	case "", "application/fhir+json":
		sp.payload = p
	default:
		return sp, invalid("Subscription.channel.payload must be absent or application/fhir+json")
	}
	raw, _ := channel["endpoint"].(string)
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return sp, invalid("Subscription.channel.endpoint must be an https URL without user information or fragment")
	}
	sp.endpoint = u
	return sp, nil
}

// checkEndpoint runs the configured EndpointChecker; without one no
// endpoint is admitted.
func (s *Service) checkEndpoint(ctx context.Context, u *url.URL) error {
	if s.cfg.Endpoints == nil {
		return fmt.Errorf("%w: subscriptions are not enabled on this server", ErrForbidden)
	}
	if err := s.cfg.Endpoints.CheckEndpoint(ctx, u); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%w: Subscription.channel.endpoint: %w", ErrInvalid, err)
	}
	return nil
}

// subscriptionWrite is the part of a Subscription write the subscriptions
// table takes.
type subscriptionWrite struct {
	row    store.Subscription
	secret *SubscriptionSecret // set by CreateSubscription: the new secret goes here
}

// CreateSubscription creates a Subscription (POST) and returns its signing
// secret, which is never given out again. It is recorded like Create.
func (s *Service) CreateSubscription(ctx context.Context, c Caller, res *fhir.Resource) (Entry, SubscriptionSecret, error) {
	var secret SubscriptionSecret
	e, err := s.createSubscription(ctx, c, res, &secret)
	if err := s.failed(ctx, c, err, access{action: "create", typ: subscriptionType}); err != nil {
		return Entry{}, SubscriptionSecret{}, err
	}
	return e, secret, nil
}

func (s *Service) createSubscription(ctx context.Context, c Caller, res *fhir.Resource, secret *SubscriptionSecret) (Entry, error) {
	if res.Type != subscriptionType {
		return Entry{}, invalid("CreateSubscription takes a Subscription")
	}
	d, err := s.decide(c.Subject, policy.ActionCreate, res.Type)
	if err != nil {
		return Entry{}, err
	}
	op := &writeOp{typ: res.Type, id: newID(), res: res, mustNew: true, within: d, sub: &subscriptionWrite{secret: secret}}
	if err := s.commit(ctx, c, []*writeOp{op}); err != nil {
		return Entry{}, err
	}
	return op.entry, nil
}

// prepareSubscription checks a write of a Subscription before its
// transaction: who may make it, its criteria and endpoint, and the owner
// tag and status Ward keeps; it seals a new subscription's secret.
func (s *Service) prepareSubscription(ctx context.Context, c Caller, op *writeOp) error {
	if c.UserID != "" || op.within.Restricted() {
		return fmt.Errorf("%w: Subscriptions are created and changed by services", ErrForbidden)
	}
	cur, err := s.store.Subscription(ctx, op.id)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(err)
	}
	if exists && cur.Client != c.ClientID {
		return hiddenIn("")
	}
	if op.sub == nil {
		op.sub = &subscriptionWrite{}
	}
	if op.res == nil {
		// A deletion, the owner's or of nothing: the row stays, off, so
		// that the deleted Subscription is still its owner's alone.
		if exists {
			cur.Status, cur.Secret = store.SubscriptionOff, nil
			op.sub.row = cur
		}
		return nil
	}
	if op.mustNew != (op.sub.secret != nil) || (!op.mustNew && !exists) {
		return invalid("a Subscription is created with POST /fhir/Subscription, which returns its secret")
	}
	sp, err := s.parseSubscription(ctx, c.Subject, op.res)
	if err != nil {
		return err
	}
	if err := s.checkEndpoint(ctx, sp.endpoint); err != nil {
		return err
	}
	status := store.SubscriptionRequested
	if sp.off {
		status = store.SubscriptionOff
	}
	op.res.Object["status"] = status
	delete(op.res.Object, "error")
	setOwnerTag(op.res, c.ClientID)
	scopes := make([]string, 0, len(c.Scopes))
	for _, sc := range c.Scopes {
		if str := sc.String(); str != "" {
			scopes = append(scopes, str)
		}
	}
	op.sub.row = store.Subscription{ID: op.id, Client: c.ClientID, Type: sp.typ, Scopes: scopes, Status: status}
	if op.sub.secret != nil {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("%w: random: %w", ErrUnavailable, err)
		}
		dk, err := s.keyring.DataKey(ctx, "")
		if err != nil {
			return storeErr(err)
		}
		if op.sub.row.Secret, err = dk.Seal(secretAAD(op.id), b); err != nil {
			return storeErr(err)
		}
		*op.sub.secret = SubscriptionSecret{b: b}
	}
	return nil
}

// setOwnerTag replaces every owner tag of res with one naming client.
func setOwnerTag(res *fhir.Resource, client string) {
	meta, _ := res.Object["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	var tags []any
	if l, ok := meta["tag"].([]any); ok {
		for _, t := range l {
			if m, ok := t.(map[string]any); ok && m["system"] == OwnerTagSystem {
				continue
			}
			tags = append(tags, t)
		}
	}
	meta["tag"] = append(tags, map[string]any{"system": OwnerTagSystem, "code": client})
	res.Object["meta"] = meta
}

// ownerOf returns the client an opened Subscription body's owner tag
// names, "" when none.
func ownerOf(body []byte) string {
	res, err := fhir.Parse(body, fhir.Limits{})
	if err != nil {
		return ""
	}
	meta, _ := res.Object["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, t := range tags {
		if m, ok := t.(map[string]any); ok && m["system"] == OwnerTagSystem {
			code, _ := m["code"].(string)
			return code
		}
	}
	return ""
}

// ownerParams narrows a search of Subscriptions to the caller's own.
func ownerParams(c Caller, typ string, params url.Values) url.Values {
	if typ != subscriptionType {
		return params
	}
	out := url.Values{}
	for k, v := range params {
		out[k] = slices.Clone(v)
	}
	out.Add("_tag", OwnerTagSystem+"|"+search.Escape(c.ClientID))
	return out
}

// writeSubscriptionRows is the part of a commit that keeps the
// subscriptions table and the outbox, inside the write's transaction. It
// returns how many outbox rows it added.
func writeSubscriptionRows(ctx context.Context, tx store.Tx, ops []*writeOp, max int) (int, error) {
	added := 0
	for _, op := range ops {
		switch {
		case op.noop:
		case op.typ == subscriptionType && op.sub.row.ID == "":
			// The deletion of an id no subscription has.
		case op.typ == subscriptionType:
			row := op.sub.row
			row.Updated = op.entry.LastUpdated
			if err := capSubscriptions(ctx, tx, row, max); err != nil {
				return 0, err
			}
			if err := tx.PutSubscription(ctx, row); err != nil {
				return 0, err
			}
		case op.res != nil:
			n, err := tx.EnqueueNotifications(ctx, op.typ, op.id, op.entry.Version, op.entry.LastUpdated)
			if err != nil {
				return 0, err
			}
			added += n
		}
	}
	return added, nil
}

// capSubscriptions refuses a write that would give row's client more than
// max subscriptions that are not off. Turning one off is never refused.
func capSubscriptions(ctx context.Context, tx store.Tx, row store.Subscription, max int) error {
	if row.Status == store.SubscriptionOff {
		return nil
	}
	n, err := tx.CountSubscriptions(ctx, row.Client, row.ID)
	if err != nil {
		return err
	}
	if n >= max {
		return fmt.Errorf("%w: this client already has %d Subscriptions that are not off, the most allowed; set one's status to off or delete it first", ErrConflict, n)
	}
	return nil
}

// ownSubscription is hidden unless c's client owns the Subscription id,
// deleted or not: another client's answers as an unknown id would.
func (s *Service) ownSubscription(ctx context.Context, c Caller, id string) error {
	row, err := s.store.Subscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && row.Client != c.ClientID {
		return hiddenIn("")
	}
	return storeErr(err)
}

// subscriptionView is what an owner is served of its Subscription: the
// status and error delivery left, not the ones written. Anyone else is
// answered as for an unknown id.
func (s *Service) subscriptionView(ctx context.Context, c Caller, e Entry) (Entry, error) {
	if e.Type != subscriptionType {
		return e, nil
	}
	if e.Body == nil {
		return e, s.ownSubscription(ctx, c, e.ID)
	}
	if owner := ownerOf(e.Body); owner == "" || owner != c.ClientID {
		return Entry{}, hiddenIn("")
	}
	row, err := s.store.Subscription(ctx, e.ID)
	if errors.Is(err, store.ErrNotFound) {
		return e, nil // an older version of one since deleted
	}
	if err != nil {
		return Entry{}, storeErr(err)
	}
	res, err := fhir.Parse(e.Body, fhir.Limits{})
	if err != nil {
		return Entry{}, fmt.Errorf("records: a stored Subscription does not decode: %v", err)
	}
	res.Object["status"] = row.Status
	delete(res.Object, "error")
	if row.Error != "" {
		res.Object["error"] = row.Error
	}
	e.Body = res.Marshal()
	return e, nil
}

// subscriptionViews is subscriptionView over a list, leaving out what is
// not the caller's.
func (s *Service) subscriptionViews(ctx context.Context, c Caller, l []Entry) ([]Entry, error) {
	out := l[:0]
	for _, e := range l {
		v, err := s.subscriptionView(ctx, c, e)
		if errors.Is(err, ErrHidden) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
