package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/detect"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/secevent"
)

// The scenarios. Each makes its throw-away accounts and synthetic data,
// registers the alerts it expects with the watcher, sends its traffic
// (noting each triggering request's answer) and returns a line saying
// what it did. Sizes come from the detector's configuration, so that
// each rule is crossed by the last request meant to cross it.

// snooping: a practitioner with care relationships to one more patient
// than many-patients allows reads them all in one search, then reads
// patients outside their care (unrelated-patient), searches for others
// by id (search-snooping) and reads a VIP's record (vip).
func (r *drill) snooping(ctx context.Context, w *watcher) (string, error) {
	c := r.cfg
	nRelated := min(c.ManyPatients.Patients, c.ManyPatients.Ceiling) + 1
	nOutside := c.UnrelatedPatient.OutsidePatients
	nAsked := c.SearchSnooping.Patients
	tag := r.name("snooping")
	r.logf("snooping: creating a practitioner record, %d patients in their care, %d others and a VIP (tag %s)", nRelated, max(nOutside, nAsked), tag)
	setup, err := r.setupToken(ctx)
	if err != nil {
		return "", err
	}
	vip, err := r.createPatients(ctx, setup, tag, 1, true, "")
	if err != nil {
		return "", err
	}
	prac, err := r.create(ctx, setup, map[string]any{"resourceType": "Practitioner", "active": true, "meta": drillMeta(tag, false)})
	if err != nil {
		return "", err
	}
	if _, err := r.createPatients(ctx, setup, tag, nRelated, false, "Practitioner/"+prac); err != nil {
		return "", err
	}
	others, err := r.createPatients(ctx, setup, tag, max(nOutside, nAsked), false, "")
	if err != nil {
		return "", err
	}
	u, err := r.newUser(ctx, "snoop", "Practitioner/"+prac)
	if err != nil {
		return "", err
	}
	tok, err := r.signIn(ctx, r.a, u)
	if err != nil {
		return "", err
	}
	many, err := w.expect(ctx, &expectation{rule: detect.RuleManyPatients, actor: u.id})
	if err != nil {
		return "", err
	}
	outside, err := w.expect(ctx, &expectation{rule: detect.RuleUnrelatedPatient, actor: u.id})
	if err != nil {
		return "", err
	}
	asked, err := w.expect(ctx, &expectation{rule: detect.RuleSearchSnooping, actor: u.id})
	if err != nil {
		return "", err
	}
	vipExp, err := w.expect(ctx, &expectation{rule: detect.RuleVIP, actor: u.id})
	if err != nil {
		return "", err
	}

	r.logf("snooping: %s reads its %d patients in one search", u.name, nRelated)
	n, err := r.searchAll(ctx, r.a, tok, "Patient?_tag="+url.QueryEscape(drillTagSystem+"|"+tag))
	if err != nil {
		return "", err
	}
	if n != nRelated {
		return "", fmt.Errorf("the practitioner's search found %d patients, want the %d in their care", n, nRelated)
	}
	many.triggered()

	r.logf("snooping: reads %d patients outside their care", nOutside)
	for _, id := range others[:nOutside] {
		if _, err := r.a.fhir(ctx, http.MethodGet, "/Patient/"+id, tok, nil, http.StatusNotFound); err != nil {
			return "", err
		}
	}
	outside.triggered()

	r.logf("snooping: searches for %d patients by id", nAsked)
	for i := 0; i < nAsked; i += 50 {
		ids := others[i:min(i+50, nAsked)]
		if _, err := r.a.fhir(ctx, http.MethodGet, "/Observation?patient="+strings.Join(ids, ","), tok, nil, http.StatusOK); err != nil {
			return "", err
		}
	}
	asked.triggered()

	// The detector learns VIP labels within a minute (records.DetectionFacts):
	// while the alert is missing, the practitioner looks again, as a
	// snooper would.
	readVIP := func(ctx context.Context) error {
		_, err := r.a.fhir(ctx, http.MethodGet, "/Patient/"+vip[0], tok, nil, http.StatusNotFound)
		if err == nil {
			vipExp.triggered()
		}
		return err
	}
	vipExp.retry = readVIP
	r.logf("snooping: reads a VIP's record")
	if err := readVIP(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("practitioner %s (%s) read %d patients in their care in one search, %d patients outside it, searched for %d others by id, and read a VIP's record",
		u.name, u.id, nRelated, nOutside, nAsked), nil
}

// credentialStuffing: one wrong password for each of as many throw-away
// accounts as the rule's threshold, from one source, on the sign-in page.
func (r *drill) credentialStuffing(ctx context.Context, w *watcher) (string, error) {
	c := r.cfg.CredentialStuffing
	n := min(c.Accounts, c.Failures)
	if n > 20 {
		r.logf("credential-stuffing: %d failures from one address exceed Ward's default sign-in budget (20 at once); refusals past it are not sign-in failures", n)
	}
	r.logf("credential-stuffing: creating %d accounts", n)
	var names []string
	for i := range n {
		u, err := r.newUser(ctx, fmt.Sprintf("stuffed-%d", i+1), "")
		if err != nil {
			return "", err
		}
		names = append(names, u.name)
	}
	app, err := r.drillApp(ctx)
	if err != nil {
		return "", err
	}
	src := ""
	if r.a.source.IsValid() {
		src = r.a.source.String()
	}
	e, err := w.expect(ctx, &expectation{rule: detect.RuleCredentialStuffing, source: src})
	if err != nil {
		return "", err
	}
	r.logf("credential-stuffing: a wrong password for each account")
	at, err := r.a.failSignIns(ctx, app, names)
	if err != nil {
		return "", err
	}
	e.triggeredAt(at)
	from := "one source"
	if src != "" {
		from = src
	}
	return fmt.Sprintf("%d failed sign-ins over %d throw-away accounts from %s", n, n, from), nil
}

// exfiltration: a service reads two patients, then one more patient than
// the service-volume ceiling in one burst of searches. The ceiling
// applies whatever the client's baseline, which needs days to learn.
func (r *drill) exfiltration(ctx context.Context, w *watcher) (string, error) {
	n := r.cfg.ServiceVolume.Ceiling + 1
	tag := r.name("exfiltration")
	r.logf("exfiltration: creating %d patients (tag %s)", n, tag)
	setup, err := r.setupToken(ctx)
	if err != nil {
		return "", err
	}
	ids, err := r.createPatients(ctx, setup, tag, n, false, "")
	if err != nil {
		return "", err
	}
	svc, err := r.newService(ctx, "exfil", "system/Patient.rs")
	if err != nil {
		return "", err
	}
	tok, err := r.a.serviceToken(ctx, svc.id, svc.secret)
	if err != nil {
		return "", err
	}
	e, err := w.expect(ctx, &expectation{rule: detect.RuleServiceVolume, actor: svc.id})
	if err != nil {
		return "", err
	}
	r.logf("exfiltration: %s reads 2 patients, its normal phase", svc.id)
	for _, id := range ids[:min(2, len(ids))] {
		if _, err := r.a.fhir(ctx, http.MethodGet, "/Patient/"+id, tok, nil, http.StatusOK); err != nil {
			return "", err
		}
	}
	// The ceiling counts patients per clock hour: a burst of several
	// pages waits for a new hour rather than straddle two.
	if pages := (n + 999) / 1000; pages > 1 {
		if left := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); left < time.Minute {
			r.logf("exfiltration: waiting %s for the next hour, so that the burst counts in one", left.Round(time.Second))
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(left + time.Second):
			}
		}
	}
	r.logf("exfiltration: %s reads all %d in a burst", svc.id, n)
	got, err := r.searchAll(ctx, r.a, tok, "Patient?_tag="+url.QueryEscape(drillTagSystem+"|"+tag))
	if err != nil {
		return "", err
	}
	if got != n {
		return "", fmt.Errorf("the service's search found %d patients, want %d", got, n)
	}
	e.triggered()
	return fmt.Sprintf("service %s read 2 patients, then %d in a burst (service-volume ceiling %d per hour)", svc.id, n, r.cfg.ServiceVolume.Ceiling), nil
}

// stolenToken: a person signs in, and the token is used from the first
// source, then from the second, another network.
func (r *drill) stolenToken(ctx context.Context, w *watcher) (string, error) {
	u, err := r.newUser(ctx, "token", "")
	if err != nil {
		return "", err
	}
	tok, err := r.signIn(ctx, r.a, u)
	if err != nil {
		return "", err
	}
	e, err := w.expect(ctx, &expectation{rule: detect.RuleTokenTwoSources, actor: u.id})
	if err != nil {
		return "", err
	}
	// A search that names no one and finds nothing: the token's use is
	// what counts.
	path := "/Patient?_tag=" + url.QueryEscape(drillTagSystem+"|"+r.name("stolen-token")) + "&_count=1"
	for _, c := range []*drillHTTP{r.a, r.b} {
		r.logf("stolen-token: %s's token used from %s", u.name, c.source)
		if _, err := c.fhir(ctx, http.MethodGet, path, tok, nil, http.StatusOK); err != nil {
			return "", err
		}
	}
	e.triggered()
	return fmt.Sprintf("practitioner %s (%s) signed in; the token was used from %s, then from %s", u.name, u.id, r.a.source, r.b.source), nil
}

// drillMeta is the meta of what the drill creates: its tag, and the VIP
// label (v3-ActCode CEL) when vip.
func drillMeta(tag string, vip bool) map[string]any {
	m := map[string]any{"tag": []any{map[string]any{"system": drillTagSystem, "code": tag}}}
	if vip {
		m["security"] = []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "CEL"}}
	}
	return m
}

// person is a throw-away user.
type person struct{ id, name, password string }

// newUser creates a throw-away practitioner, recorded in the ledger as
// the command line's user creation is.
func (r *drill) newUser(ctx context.Context, suffix, fhirUser string) (person, error) {
	pw, err := generatePassword()
	if err != nil {
		return person{}, err
	}
	u, err := r.users.Create(ctx, auth.NewUser{Username: r.name(suffix), Role: policy.RolePractitioner, FHIRUser: fhirUser, Password: pw})
	if err != nil {
		return person{}, err
	}
	r.made.users = append(r.made.users, u.ID)
	if err := recordAdmin(ctx, r.db, "user-create", "User", u.ID, "role="+u.Role+" drill="+r.id); err != nil {
		return person{}, err
	}
	changeEvent(r.st, r.stderr, secevent.AccountChanged, u.ID, "created", u.Role)
	return person{id: u.ID, name: u.Username, password: pw}, nil
}

// service is a throw-away service client.
type service struct{ id, secret string }

func (r *drill) newService(ctx context.Context, suffix, scopes string) (service, error) {
	c, secret, err := r.au.CreateService(ctx, auth.ServiceSpec{ID: r.name(suffix), Name: r.name(suffix), Scopes: strings.Fields(scopes)})
	if err != nil {
		return service{}, err
	}
	r.made.clients = append(r.made.clients, c.ID)
	if err := recordAdmin(ctx, r.db, "client-create", "Client", c.ID, "service scope="+strings.Join(c.Scopes, " ")+" drill="+r.id); err != nil {
		return service{}, err
	}
	changeEvent(r.st, r.stderr, secevent.ClientChanged, c.ID, "created", "")
	return service{id: c.ID, secret: secret.Reveal()}, nil
}

// drillApp returns the run's public app, made at first use. Its
// redirect URI is on loopback and never contacted.
func (r *drill) drillApp(ctx context.Context) (drillApp, error) {
	if r.app != nil {
		return *r.app, nil
	}
	const redirect = "http://127.0.0.1/ward-drill-callback"
	scopes := []string{"openid", "fhirUser", "user/*.rs"}
	c, _, err := r.au.CreateApp(ctx, auth.AppSpec{Name: r.name("app"), Scopes: scopes, RedirectURIs: []string{redirect}, Public: true})
	if err != nil {
		return drillApp{}, err
	}
	r.made.clients = append(r.made.clients, c.ID)
	if err := recordAdmin(ctx, r.db, "client-create", "Client", c.ID, "app scope="+strings.Join(c.Scopes, " ")+" drill="+r.id); err != nil {
		return drillApp{}, err
	}
	changeEvent(r.st, r.stderr, secevent.ClientChanged, c.ID, "created", "")
	r.app = &drillApp{id: c.ID, redirect: redirect, scope: strings.Join(scopes, " ")}
	return *r.app, nil
}

func (r *drill) signIn(ctx context.Context, c *drillHTTP, u person) (string, error) {
	app, err := r.drillApp(ctx)
	if err != nil {
		return "", err
	}
	r.logf("%s signs in through the sign-in pages", u.name)
	return c.signIn(ctx, app, u.name, u.password)
}

// setupToken returns a token of the run's setup service, which writes
// and deletes the synthetic data (and reads none), made at first use.
func (r *drill) setupToken(ctx context.Context) (string, error) {
	if r.setupID == "" {
		s, err := r.newService(ctx, "setup", "system/Patient.cud system/CareTeam.cud system/Practitioner.cud")
		if err != nil {
			return "", err
		}
		r.setupID, r.setupSecret = s.id, s.secret
	}
	return r.a.serviceToken(ctx, r.setupID, r.setupSecret)
}

// create posts one resource and returns its id.
func (r *drill) create(ctx context.Context, tok string, res map[string]any) (string, error) {
	typ := res["resourceType"].(string)
	b, err := r.a.fhir(ctx, http.MethodPost, "/"+typ, tok, res, http.StatusCreated)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.ID == "" {
		return "", fmt.Errorf("create %s: no id in the answer", typ)
	}
	r.made.resources[typ] = append(r.made.resources[typ], out.ID)
	return out.ID, nil
}

// bundlePatients is how many patients one transaction creates.
const bundlePatients = 200

// createPatients creates n synthetic patients tagged tag, in
// transactions, and returns their ids. vip labels them VIPs; careOf,
// when set, gives each a care team with that participant.
func (r *drill) createPatients(ctx context.Context, tok, tag string, n int, vip bool, careOf string) ([]string, error) {
	var ids []string
	for done := 0; done < n; done += bundlePatients {
		var entries []any
		for range min(bundlePatients, n-done) {
			full := "urn:uuid:" + uuid()
			entries = append(entries, map[string]any{"fullUrl": full,
				"resource": map[string]any{"resourceType": "Patient", "active": true, "meta": drillMeta(tag, vip)},
				"request":  map[string]any{"method": "POST", "url": "Patient"}})
			if careOf != "" {
				entries = append(entries, map[string]any{"resource": map[string]any{"resourceType": "CareTeam", "status": "active", "meta": drillMeta(tag, false),
					"subject":     map[string]any{"reference": full},
					"participant": []any{map[string]any{"member": map[string]any{"reference": careOf}}}},
					"request": map[string]any{"method": "POST", "url": "CareTeam"}})
			}
		}
		b, err := r.a.fhir(ctx, http.MethodPost, "", tok, map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries}, http.StatusOK)
		if err != nil {
			return ids, err
		}
		var resp struct {
			Entry []struct {
				Response struct {
					Location string `json:"location"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &resp); err != nil || len(resp.Entry) != len(entries) {
			return ids, fmt.Errorf("transaction: %d entries answered, want %d (%v)", len(resp.Entry), len(entries), err)
		}
		for _, e := range resp.Entry {
			parts := strings.Split(e.Response.Location, "/")
			if len(parts) < 2 {
				return ids, fmt.Errorf("transaction: an entry without a location")
			}
			typ, id := parts[0], parts[1]
			r.made.resources[typ] = append(r.made.resources[typ], id)
			if typ == "Patient" {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// searchAll runs a search with the largest page and follows its pages,
// returning how many resources matched.
func (r *drill) searchAll(ctx context.Context, c *drillHTTP, tok, query string) (int, error) {
	path := "/fhir/" + query + "&_count=1000"
	n := 0
	for page := 0; path != ""; page++ {
		if page > 10000 {
			return n, errors.New("search: too many pages")
		}
		status, b, err := c.call(ctx, http.MethodGet, path, tok, nil)
		if err != nil {
			return n, fmt.Errorf("search: %w", err)
		}
		if status != http.StatusOK {
			return n, fmt.Errorf("search: status %d%s", status, outcomeOf(b))
		}
		var bundle struct {
			Link []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
			Entry []struct {
				Search struct {
					Mode string `json:"mode"`
				} `json:"search"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			return n, fmt.Errorf("search: %w", err)
		}
		for _, e := range bundle.Entry {
			if e.Search.Mode == "" || e.Search.Mode == "match" {
				n++
			}
		}
		path = ""
		for _, l := range bundle.Link {
			if l.Relation == "next" {
				// The next page of the target, whatever base URL the
				// server calls itself by.
				u, err := url.Parse(l.URL)
				if err != nil {
					return n, fmt.Errorf("search: next link: %w", err)
				}
				path = u.RequestURI()
			}
		}
	}
	return n, nil
}

// cleanup deletes the synthetic resources (care teams first, then
// patients, then practitioner records), then disables the throw-away
// users and revokes the clients.
func (r *drill) cleanup(ctx context.Context) cleanupResult {
	var out cleanupResult
	var errs []error
	if r.setupID != "" && len(r.made.resources) > 0 {
		r.logf("clean-up: deleting the synthetic resources")
		tok, err := r.a.serviceToken(ctx, r.setupID, r.setupSecret)
		if err != nil {
			errs = append(errs, err)
		}
		for _, typ := range []string{"CareTeam", "Patient", "Practitioner"} {
			if err != nil {
				break
			}
			ids := r.made.resources[typ]
			for i := 0; i < len(ids); i += 500 {
				var entries []any
				for _, id := range ids[i:min(i+500, len(ids))] {
					entries = append(entries, map[string]any{"request": map[string]any{"method": "DELETE", "url": typ + "/" + id}})
				}
				if _, err = r.a.fhir(ctx, http.MethodPost, "", tok, map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries}, http.StatusOK); err != nil {
					errs = append(errs, fmt.Errorf("deleting %s: %w", typ, err))
					break
				}
				out.ResourcesDeleted += len(entries)
			}
		}
	}
	r.logf("clean-up: disabling %d users, revoking %d clients", len(r.made.users), len(r.made.clients))
	for _, id := range r.made.users {
		if err := r.users.SetDisabled(ctx, id, true); err != nil {
			errs = append(errs, err)
			continue
		}
		out.UsersDisabled++
		if err := recordAdmin(ctx, r.db, "user-disable", "User", id, "drill="+r.id); err != nil {
			errs = append(errs, err)
		}
		changeEvent(r.st, r.stderr, secevent.AccountChanged, id, "disabled", "")
	}
	for _, id := range r.made.clients {
		if err := r.au.RevokeClient(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		out.ClientsRevoked++
		if err := recordAdmin(ctx, r.db, "client-revoke", "Client", id, "drill="+r.id); err != nil {
			errs = append(errs, err)
		}
		changeEvent(r.st, r.stderr, secevent.ClientChanged, id, "revoked", "")
	}
	if err := errors.Join(errs...); err != nil {
		out.Error = err.Error()
	}
	return out
}
