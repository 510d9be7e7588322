package compliance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// ActionConfirm is the ledger action of a reviewer's confirmation of one
// person's or client's access (HIPAA 164.308(a)(4) recertification). Its
// entry names the user or client (ResourceType "User" or "Client",
// ResourceID) and, in Detail, "reviewer=<id>"; the entry's time is when.
const ActionConfirm = "access-confirm"

// Subject kinds.
const (
	KindPerson = "person"
	KindClient = "client"
)

// ReviewStore is what an access review reads.
type ReviewStore interface {
	ListUsers(ctx context.Context) ([]store.User, error)
	ListClients(ctx context.Context) ([]store.Client, error)
	LastLedgerEntryByActor(ctx context.Context, actor, client string) (store.LedgerEntry, error)
	ListEmergencyGrants(ctx context.Context, q store.EmergencyQuery) ([]store.EmergencyGrant, bool, error)
	LedgerEntriesByActor(ctx context.Context, q store.ActorQuery) ([]store.LedgerEntry, error)
}

// ReviewConfig says how to review.
type ReviewConfig struct {
	// Period is how long a confirmation lasts; an active person or client
	// not confirmed within it (or, never confirmed, created before it) is
	// overdue. Default 90 days.
	Period time.Duration
	// MFARoles are the roles configured to need a second factor, besides
	// policy.PrivilegedRoles.
	MFARoles []string
	// ConfirmClient is the client id under which confirmations are
	// recorded (the command line's, "ward-cli"): they are found through
	// the ledger's actor index.
	ConfirmClient string
	// Policy gives the roles' scopes; the zero Policy knows the built-in
	// roles.
	Policy policy.Policy
}

// Confirmation is a reviewer's recorded confirmation.
type Confirmation struct {
	At       time.Time `json:"at"`
	Reviewer string    `json:"reviewer"`
	// Recorder is the ledger actor that recorded it (the operating
	// system account that ran ward access confirm).
	Recorder string `json:"recorder"`
	Ledger   int64  `json:"ledger_index"`
}

// BreakGlass sums up a person's break-the-glass grants.
type BreakGlass struct {
	Grants     int        `json:"grants"`
	Unreviewed int        `json:"unreviewed"`
	Last       *time.Time `json:"last,omitempty"`
}

// ReviewSubject is one person or client in an access review.
type ReviewSubject struct {
	Kind    string     `json:"kind"`
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Role    string     `json:"role,omitempty"`
	Scopes  []string   `json:"scopes"`
	Status  string     `json:"status"` // active, disabled, locked, revoked, suspended
	Created time.Time  `json:"created"`
	LastUse *time.Time `json:"last_use,omitempty"`
	// MFA is a person's second factors ("totp", "webauthn", both joined
	// by "+", or "none"); MFARequired says whether the role needs one.
	MFA         string        `json:"mfa,omitempty"`
	MFARequired bool          `json:"mfa_required,omitempty"`
	BreakGlass  *BreakGlass   `json:"break_glass,omitempty"`
	Confirmed   *Confirmation `json:"confirmed,omitempty"`
	Due         time.Time     `json:"due"`
	Overdue     bool          `json:"overdue"`
}

// Active reports whether the subject can use Ward now.
func (s ReviewSubject) Active() bool { return s.Status == "active" || s.Status == "locked" }

// ErrReviewer refuses a confirmation without a reviewer or of nothing.
var ErrReviewer = errors.New("compliance: a confirmation names a reviewer and one user or client")

// ConfirmEntry returns the ledger entry that records a confirmation.
// kind is KindPerson or KindClient.
func ConfirmEntry(kind, id, reviewer string, at time.Time) (ledger.Entry, error) {
	typ := map[string]string{KindPerson: "User", KindClient: "Client"}[kind]
	if typ == "" || id == "" || reviewer == "" || strings.ContainsAny(reviewer, " \t\r\n") {
		return ledger.Entry{}, ErrReviewer
	}
	return ledger.Entry{Time: at.UTC(), Action: ActionConfirm, ResourceType: typ, ResourceID: id,
		Outcome: "success", Detail: "reviewer=" + reviewer}, nil
}

// Review lists every person and client with their access, last use, second
// factors, break-the-glass history and last confirmation, people first,
// each in id order.
func Review(ctx context.Context, st ReviewStore, cfg ReviewConfig, now time.Time) ([]ReviewSubject, error) {
	if cfg.Period <= 0 {
		cfg.Period = 90 * 24 * time.Hour
	}
	confirmed, err := confirmations(ctx, st, cfg.ConfirmClient)
	if err != nil {
		return nil, err
	}
	glass, err := breakGlass(ctx, st)
	if err != nil {
		return nil, err
	}
	users, err := st.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("compliance: users: %w", err)
	}
	clients, err := st.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("compliance: clients: %w", err)
	}
	mfaRoles := append(policy.PrivilegedRoles(), cfg.MFARoles...)
	var out []ReviewSubject
	for _, u := range users {
		s := ReviewSubject{Kind: KindPerson, ID: u.ID, Name: u.Username, Role: u.Role, Created: u.Created.UTC(),
			Status: "active", MFARequired: slices.Contains(mfaRoles, u.Role), Scopes: []string{}}
		switch {
		case u.Disabled:
			s.Status = "disabled"
		case u.LockedUntil.After(now):
			s.Status = "locked"
		}
		if r, ok := cfg.Policy.Role(u.Role); ok {
			for _, g := range r.Grants {
				s.Scopes = append(s.Scopes, g.String())
			}
			if r.Ledger {
				s.Scopes = append(s.Scopes, "(ledger)")
			}
			if r.Review {
				s.Scopes = append(s.Scopes, "(break-the-glass review)")
			}
		} else {
			s.Scopes = append(s.Scopes, "(custom role: see the --roles file)")
		}
		var mfa []string
		if u.MFASecret != nil {
			mfa = append(mfa, "totp")
		}
		if u.WebAuthn != nil {
			mfa = append(mfa, "webauthn")
		}
		s.MFA = strings.Join(mfa, "+")
		if s.MFA == "" {
			s.MFA = "none"
		}
		if g, ok := glass[u.ID]; ok {
			s.BreakGlass = g
		}
		if err := finish(ctx, st, &s, u.ID, "", confirmed["User/"+u.ID], cfg.Period, now); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	for _, c := range clients {
		s := ReviewSubject{Kind: KindClient, ID: c.ID, Name: c.Name, Scopes: slices.Clone(c.Scopes), Created: c.Created.UTC(), Status: "active"}
		switch {
		case c.Revoked:
			s.Status = "revoked"
		case c.Suspended:
			s.Status = "suspended"
		}
		if s.Scopes == nil {
			s.Scopes = []string{}
		}
		if err := finish(ctx, st, &s, "", c.ID, confirmed["Client/"+c.ID], cfg.Period, now); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind == KindPerson
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// finish sets last use, confirmation and due date.
func finish(ctx context.Context, st ReviewStore, s *ReviewSubject, actor, client string, c *Confirmation, period time.Duration, now time.Time) error {
	last, err := st.LastLedgerEntryByActor(ctx, actor, client)
	switch {
	case err == nil:
		t := last.Time.UTC()
		s.LastUse = &t
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("compliance: last use of %s %s: %w", s.Kind, s.ID, err)
	}
	s.Confirmed = c
	from := s.Created
	if c != nil {
		from = c.At
	}
	s.Due = from.Add(period).UTC()
	s.Overdue = s.Active() && now.After(s.Due)
	return nil
}

// confirmations returns the latest confirmation of each "User/<id>" and
// "Client/<id>", from the ledger entries recorded under client.
func confirmations(ctx context.Context, st ReviewStore, client string) (map[string]*Confirmation, error) {
	out := map[string]*Confirmation{}
	if client == "" {
		return out, nil
	}
	q := store.ActorQuery{Client: client, AfterIndex: -1, Count: 1000}
	for {
		rows, err := st.LedgerEntriesByActor(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("compliance: confirmations: %w", err)
		}
		for _, row := range rows {
			e, err := ledger.DecodeEntry(row.Entry)
			if err != nil {
				return nil, fmt.Errorf("compliance: ledger entry %d: %w", row.Index, err)
			}
			reviewer, ok := strings.CutPrefix(e.Detail, "reviewer=")
			if e.Action != ActionConfirm || e.Outcome != "success" || !ok || (e.ResourceType != "User" && e.ResourceType != "Client") {
				continue
			}
			// Rows come oldest first: a later confirmation replaces.
			out[e.ResourceType+"/"+e.ResourceID] = &Confirmation{At: e.Time.UTC(), Reviewer: reviewer, Recorder: e.Actor, Ledger: row.Index}
		}
		if len(rows) < q.Count {
			return out, nil
		}
		q.Since, q.AfterIndex = rows[len(rows)-1].Time, rows[len(rows)-1].Index
	}
}

// breakGlass sums up every person's break-the-glass grants.
func breakGlass(ctx context.Context, st ReviewStore) (map[string]*BreakGlass, error) {
	out := map[string]*BreakGlass{}
	q := store.EmergencyQuery{Count: 500}
	for {
		grants, more, err := st.ListEmergencyGrants(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("compliance: break-the-glass grants: %w", err)
		}
		for _, g := range grants {
			b := out[g.UserID]
			if b == nil {
				b = &BreakGlass{}
				out[g.UserID] = b
			}
			b.Grants++
			if g.Reviewed.IsZero() {
				b.Unreviewed++
			}
			if c := g.Created.UTC(); b.Last == nil || c.After(*b.Last) {
				b.Last = &c
			}
		}
		if !more {
			return out, nil
		}
		q.Offset += len(grants)
	}
}

// Overdue returns the subjects whose confirmation is overdue.
func Overdue(subjects []ReviewSubject) []ReviewSubject {
	var out []ReviewSubject
	for _, s := range subjects {
		if s.Overdue {
			out = append(out, s)
		}
	}
	return out
}
