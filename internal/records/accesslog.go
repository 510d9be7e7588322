package records

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// ActionAccessLog is the ledger action of reading a patient's access log.
const ActionAccessLog = "access-log"

// AccessLog returns a page of a patient's access log: every ledger entry
// that names the patient, oldest first, as AuditEvents: who (the person,
// their current role and record, and the app), when, what, the outcome
// (denied attempts included) and why (the purpose of use; for
// break-the-glass, the grant and its review). It reads the ledger's
// patient index, so every entry is reachable however long the log.
// policy.DecideAccessLog says who may read it; anyone else gets
// ErrForbidden. The read is recorded, naming the patient.
//
// params may hold date (ge, gt, le, lt: recorded in that range), _count
// and _offset; mfa says whether the caller's sign-in used a second factor
// (a privacy officer needs one).
func (s *Service) AccessLog(ctx context.Context, c Caller, patient string, params url.Values, mfa bool) (SearchResult, error) {
	res, err := s.accessLog(ctx, c, patient, params, mfa)
	a := access{action: ActionAccessLog, typ: "Patient", id: patient, patient: patient, asked: patient, query: c.Query}
	return answer(res, s.account(ctx, c, err, a))
}

func (s *Service) accessLog(ctx context.Context, c Caller, patient string, params url.Values, mfa bool) (SearchResult, error) {
	if d := s.policy.DecideAccessLog(c.Subject, mfa, patient); !d.Allow {
		return SearchResult{}, fmt.Errorf("%w: %s", ErrForbidden, d.Reason)
	}
	f, err := parseAuditQuery(params, s.defaultCount(), s.maxCount())
	if err != nil {
		return SearchResult{}, err
	}
	if f.patient != "" || f.agent != "" || f.action != "" || f.entity != "" || f.outcome != "" {
		return SearchResult{}, invalid("$access-log takes date, _count and _offset only")
	}
	rows, err := s.store.LedgerEntriesByPatient(ctx, patient, f.since, f.before, f.offset, f.count+1)
	if err != nil {
		return SearchResult{}, storeErr(err)
	}
	count := f.count
	res := SearchResult{Offset: f.offset, Count: count, More: len(rows) > count}
	rows = rows[:min(len(rows), count)]
	people := make(map[string]store.User)
	grants := make(map[string]store.EmergencyGrant)
	for _, row := range rows {
		e, err := ledger.DecodeEntry(row.Entry)
		if err != nil {
			return SearchResult{}, fmt.Errorf("records: access log: entry %d: %w", row.Index, err)
		}
		var who store.User
		if e.Actor != e.Client {
			if who, err = s.person(ctx, people, e.Actor); err != nil {
				return SearchResult{}, err
			}
		}
		review, err := s.grantReviews(ctx, grants, e.Detail)
		if err != nil {
			return SearchResult{}, err
		}
		ae, err := auditEventOf(row.Index, e, func(ae map[string]any) { describeAccess(ae, who, review) })
		if err != nil {
			return SearchResult{}, err
		}
		res.Matches = append(res.Matches, ae)
	}
	return res, nil
}

// person looks up the account that made an entry, once per log page. An
// actor that is no account (a service) is the zero User.
func (s *Service) person(ctx context.Context, seen map[string]store.User, id string) (store.User, error) {
	if id == "" {
		return store.User{}, nil
	}
	if u, ok := seen[id]; ok {
		return u, nil
	}
	u, err := s.store.User(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{}
	case err != nil:
		return store.User{}, storeErr(err)
	}
	seen[id] = u
	return u, nil
}

// grantReviews returns the break-the-glass grants an entry's detail names
// ("btg-grant=a,b"), as stored now: reviewed or waiting for review.
func (s *Service) grantReviews(ctx context.Context, seen map[string]store.EmergencyGrant, detail string) ([]store.EmergencyGrant, error) {
	_, list, ok := strings.Cut(detail, "btg-grant=")
	if !ok {
		return nil, nil
	}
	list, _, _ = strings.Cut(list, " ")
	var out []store.EmergencyGrant
	for _, id := range strings.Split(list, ",") {
		g, ok := seen[id]
		if !ok {
			var err error
			g, err = s.store.EmergencyGrant(ctx, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				g = store.EmergencyGrant{ID: id}
			case err != nil:
				return nil, storeErr(err)
			}
			seen[id] = g
		}
		out = append(out, g)
	}
	return out, nil
}

// describeAccess adds to an access log's AuditEvent what the ledger entry
// holds only as ids: the person's current role and record, and the review
// of each break-the-glass grant the access went through. Neither holds
// free text: a grant's reason and a review's note stay in the review
// queue.
func describeAccess(ae map[string]any, who store.User, grants []store.EmergencyGrant) {
	if who.ID != "" {
		person := ae["agent"].([]any)[0].(map[string]any)
		if who.FHIRUser != "" {
			person["who"].(map[string]any)["reference"] = who.FHIRUser
		}
		if who.Role != "" {
			person["role"] = []any{map[string]any{"coding": []any{map[string]any{"system": "urn:ward:role", "code": who.Role}}}}
		}
	}
	if len(grants) == 0 {
		return
	}
	var text []string
	for _, g := range grants {
		switch {
		case g.Reviewed.IsZero():
			text = append(text, "break-the-glass grant "+g.ID+": not reviewed yet")
		default:
			text = append(text, "break-the-glass grant "+g.ID+": reviewed "+g.Reviewed.UTC().Format(time.RFC3339)+", "+g.Outcome)
		}
	}
	purposes, _ := ae["purposeOfEvent"].([]any)
	if len(purposes) == 0 {
		purposes = []any{map[string]any{}}
	}
	purposes[0].(map[string]any)["text"] = strings.Join(text, "; ")
	ae["purposeOfEvent"] = purposes
}
