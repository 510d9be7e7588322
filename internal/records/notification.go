package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// ErrOwnerRefused is an ErrNoDelivery: the owning client is revoked or
// suspended, or may no longer run the subscription's criteria. The
// subscription is in error until its owner changes it.
var ErrOwnerRefused = fmt.Errorf("%w: the owning client may no longer run the subscription's criteria", ErrNoDelivery)

// Delivery is one notification, decided and recorded, ready to be sent.
type Delivery struct {
	ID           string // the delivery's id, also its ledger entry's request id
	Subscription string
	Endpoint     *url.URL
	ContentType  string // "" when the notification has no body
	Body         []byte
	Payload      string // what Body holds: "none", "id" or "full"
	Secret       SubscriptionSecret
}

// Notification decides what to send for one outbox row, as the
// subscription's owner, and records the disclosure before returning it:
//
//   - the subscription must be live and its owner an active client; the
//     owner's subject has the scopes it was granted when it wrote the
//     subscription that its client still has registered;
//   - the version's resource must match the criteria now, by a search of
//     the owner's (its scopes, labels and Consents apply as to any search
//     of its); a resource changed again since is matched as it is now;
//   - the body is nothing when channel.payload is absent (R4 rest-hook);
//     otherwise a Bundle of type history with one entry naming the
//     resource, which holds the resource itself only when the owner may
//     read it now (masked as its reads are);
//   - the ledger entry (action "notify", the owner as actor and client,
//     the resource, its patient, and the subscription in Detail) is
//     durable before Notification returns, or it fails with
//     ErrUnavailable and nothing may be sent.
//
// ErrNoDelivery (or ErrOwnerRefused) means there is nothing to send.
func (s *Service) Notification(ctx context.Context, n store.Notification) (Delivery, error) {
	row, err := s.store.Subscription(ctx, n.Subscription)
	if errors.Is(err, store.ErrNotFound) || err == nil && row.Status == store.SubscriptionOff {
		return Delivery{}, ErrNoDelivery
	}
	if err != nil {
		return Delivery{}, storeErr(err)
	}
	owner, err := s.owner(ctx, row)
	if err != nil {
		return Delivery{}, err
	}
	cur, err := s.store.Current(ctx, subscriptionType, row.ID)
	if errors.Is(err, store.ErrNotFound) || err == nil && cur.Deleted {
		return Delivery{}, ErrNoDelivery
	}
	if err != nil {
		return Delivery{}, storeErr(err)
	}
	opened, err := s.decrypt(ctx, cur)
	if err != nil {
		return Delivery{}, err
	}
	body, err := fhir.Parse(opened.Body, fhir.Limits{})
	if err != nil {
		return Delivery{}, fmt.Errorf("records: a stored Subscription does not decode: %v", err)
	}
	sp, err := s.parseSubscription(ctx, owner.Subject, body)
	if errors.Is(err, ErrForbidden) {
		return Delivery{}, ErrOwnerRefused
	}
	if err != nil {
		return Delivery{}, err
	}
	d, err := s.decide(owner.Subject, policy.ActionSearch, sp.typ)
	if err != nil {
		return Delivery{}, ErrOwnerRefused
	}
	criteria := "_id=" + n.ID
	if sp.query != "" {
		criteria = sp.query + "&" + criteria
	}
	found, err := s.match(ctx, owner, d, sp.typ, criteria, 1)
	if err != nil {
		return Delivery{}, err
	}
	if len(found) == 0 || found[0].Type != n.Type {
		return Delivery{}, ErrNoDelivery
	}
	version := found[0]
	secret, err := s.openSecret(ctx, row)
	if err != nil {
		return Delivery{}, err
	}
	dl := Delivery{ID: newID(), Subscription: row.ID, Endpoint: sp.endpoint, Secret: secret, Payload: "none"}
	if sp.payload != "" {
		dl.ContentType = sp.payload
		dl.Body, dl.Payload, err = s.notificationBundle(ctx, owner, version)
		if err != nil {
			return Delivery{}, err
		}
	}
	owner.RequestID = dl.ID
	e := owner.entry(s.now(), ActionNotify)
	e.ResourceType, e.ResourceID, e.Version = version.Type, version.ID, strconv.FormatInt(version.Version, 10)
	e.Patient, e.Outcome = version.Compartment, "success"
	e.Detail = "subscription " + row.ID + " payload " + dl.Payload
	rec, err := audit.NewRecord(e)
	if err != nil {
		return Delivery{}, fmt.Errorf("%w: audit entry: %w", ErrUnavailable, err)
	}
	if err := s.cfg.Ledger.Append(ctx, rec); err != nil {
		return Delivery{}, fmt.Errorf("%w: audit entry not recorded: %w", ErrUnavailable, err)
	}
	return dl, nil
}

// owner is the caller a subscription's deliveries are decided as: its
// client, with the scopes the subscription was written with that the
// client still has registered. ErrOwnerRefused when the client is gone,
// revoked or suspended.
func (s *Service) owner(ctx context.Context, row store.Subscription) (Caller, error) {
	client, err := s.store.Client(ctx, row.Client)
	if errors.Is(err, store.ErrNotFound) {
		return Caller{}, ErrOwnerRefused
	}
	if err != nil {
		return Caller{}, storeErr(err)
	}
	if !client.Active() {
		return Caller{}, ErrOwnerRefused
	}
	sub := policy.Subject{ClientID: client.ID}
	for _, raw := range row.Scopes {
		if !slices.Contains(client.Scopes, raw) {
			continue
		}
		if sc, err := policy.ParseScope(raw); err == nil {
			sub.Scopes = append(sub.Scopes, sc)
		}
	}
	return Caller{Subject: sub}, nil
}

// openSecret opens a subscription's sealed signing secret.
func (s *Service) openSecret(ctx context.Context, row store.Subscription) (SubscriptionSecret, error) {
	dk, err := s.keyring.DataKey(ctx, "")
	if err != nil {
		return SubscriptionSecret{}, storeErr(err)
	}
	b, err := dk.Open(secretAAD(row.ID), row.Secret)
	if err != nil {
		return SubscriptionSecret{}, storeErr(err)
	}
	return SubscriptionSecret{b: b}, nil
}

// notificationBundle is the body of a notification with a payload: a
// history Bundle with one entry for the version, holding the resource
// when the owner may read it, its reference alone otherwise.
func (s *Service) notificationBundle(ctx context.Context, owner Caller, row store.Resource) ([]byte, string, error) {
	method := "PUT"
	if row.Version == 1 {
		method = "POST"
	}
	ref := row.Type + "/" + row.ID
	entry := map[string]any{
		"request":  map[string]any{"method": method, "url": ref},
		"response": map[string]any{"status": "200", "etag": `W/"` + strconv.FormatInt(row.Version, 10) + `"`},
	}
	payload := "id"
	if d, err := s.decide(owner.Subject, policy.ActionRead, row.Type); err == nil && within(d, row.Compartment) {
		e, err := s.openSeen(ctx, owner, d, row)
		switch {
		case errors.Is(err, ErrHidden), errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, "", err
		default:
			entry["resource"] = json.RawMessage(e.Body)
			payload = "full"
		}
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "history", "entry": []any{entry}})
	if err != nil {
		return nil, "", fmt.Errorf("records: notification bundle: %w", err)
	}
	return b, payload, nil
}
