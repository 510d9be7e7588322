package api_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/notify"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// receiver is a subscriber's HTTPS endpoint on this machine.
type receiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []received
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// guard admits the receiver: its loopback address allow-listed, as an
// operator would with --subscription-allow, and its certificate trusted.
func (r *receiver) guard() *notify.Guard {
	roots := r.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return notify.NewGuard(notify.GuardConfig{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, TLS: &tls.Config{RootCAs: roots}})
}

func subscriptionBody(criteria, endpoint, payload string) map[string]any {
	ch := map[string]any{"type": "rest-hook", "endpoint": endpoint}
	if payload != "" {
		ch["payload"] = payload
	}
	return map[string]any{"resourceType": "Subscription", "status": "requested", "reason": "tests", "criteria": criteria, "channel": ch}
}

func coded(patient, code string) map[string]any {
	return map[string]any{"resourceType": "Observation", "status": "final",
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
		"subject": map[string]any{"reference": "Patient/" + patient}}
}

func asClient(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestSubscriptionDelivery(t *testing.T) { testSubscriptionDelivery(t, stackOptions{}) }

func TestSubscriptionDeliveryPostgres(t *testing.T) {
	testSubscriptionDelivery(t, stackOptions{openStore: postgresStore})
}

// testSubscriptionDelivery: a service subscribes; the secret comes once;
// only the owner sees the Subscription; a matching write is delivered,
// signed, with the resource the owner may read, recorded in the ledger
// before it is sent; a write that does not match is not; a failing
// endpoint is retried with exponential backoff on an injected clock, and
// the status and error show on the Subscription throughout.
func testSubscriptionDelivery(t *testing.T, o stackOptions) {
	rcv := newReceiver(t)
	o.clocked, o.endpoints = true, rcv.guard()
	s := newStackWith(t, o)
	s.clock.Freeze()
	owner, tok := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	patient := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient"}), 201).json(t)["id"].(string)

	r := must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code=http://loinc.org|8867-4", rcv.srv.URL+"/hook", "application/fhir+json"), asClient(tok)...), 201)
	secret, err := records.ParseSubscriptionSecret(r.header.Get(api.SubscriptionSecretHeader))
	if err != nil {
		t.Fatalf("secret header: %v", err)
	}
	sub := r.json(t)
	id := sub["id"].(string)
	if sub["status"] != "requested" || strings.Contains(string(r.body), secret.Text()) {
		t.Fatalf("created: %s", r.body)
	}
	read := must(t, s.do("GET", "/fhir/Subscription/"+id, nil, asClient(tok)...), 200)
	if strings.Contains(string(read.body), secret.Text()) || read.header.Get(api.SubscriptionSecretHeader) != "" {
		t.Fatal("the secret was given out on a read")
	}
	// Another service, even one that may read every Subscription, sees
	// none of this one.
	_, other := s.serviceToken("system/Subscription.cruds")
	must(t, s.do("GET", "/fhir/Subscription/"+id, nil, asClient(other)...), 404)
	must(t, s.do("DELETE", "/fhir/Subscription/"+id, nil, asClient(other)...), 404)
	if n := s.do("GET", "/fhir/Subscription", nil, asClient(other)...).json(t)["total"]; n != 0.0 {
		t.Fatalf("another client's search found %v", n)
	}
	if n := s.do("GET", "/fhir/Subscription", nil, asClient(tok)...).json(t)["total"]; n != 1.0 {
		t.Fatalf("the owner's search found %v", n)
	}

	from := ledgerSize(t, s)
	match := must(t, s.do("POST", "/fhir/Observation", coded(patient, "8867-4")), 201).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/Observation", coded(patient, "0000-0")), 201)
	if n, err := s.db.PendingNotifications(context.Background()); err != nil || n != 2 {
		t.Fatalf("outbox after two writes: %d, %v (written in the write's transaction)", n, err)
	}
	d, err := notify.New(notify.Config{Queue: s.db, Records: s.rec, Client: rcv.guard().Client(), Now: s.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.RunOnce(context.Background())
	if err != nil || res.Sent != 1 || res.Skipped != 1 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	got := rcv.received()
	if len(got) != 1 {
		t.Fatalf("received %d notifications", len(got))
	}
	h := got[0].header
	if err := notify.Verify(secret, h.Get(notify.SignatureHeader), got[0].body, s.clock.Now(), time.Minute); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if h.Get("X-Ward-Subscription") != id || h.Get("Content-Type") != "application/fhir+json" {
		t.Fatalf("headers %v", h)
	}
	var bundle struct {
		Type  string
		Entry []struct {
			Resource map[string]any
			Request  struct{ Method, URL string }
		}
	}
	if err := json.Unmarshal(got[0].body, &bundle); err != nil || bundle.Type != "history" || len(bundle.Entry) != 1 ||
		bundle.Entry[0].Resource["id"] != match || bundle.Entry[0].Request.URL != "Observation/"+match {
		t.Fatalf("payload %s, %v", got[0].body, err)
	}
	var notified int
	for _, e := range ledgerEntries(t, s, from) {
		if e.Action != records.ActionNotify {
			continue
		}
		notified++
		if e.Client != owner || e.Actor != owner || e.ResourceID != match || e.Patient != patient ||
			!strings.Contains(e.Detail, id) || !strings.Contains(e.Detail, "full") {
			t.Fatalf("notify entry %+v", e)
		}
	}
	if notified != 1 {
		t.Fatalf("%d notify entries, want 1", notified)
	}
	for _, e := range ledgerEntries(t, s, 0) {
		if strings.Contains(string(mustEncode(t, e)), secret.Text()) {
			t.Fatal("a ledger entry holds the subscription's secret")
		}
	}
	if st := s.do("GET", "/fhir/Subscription/"+id, nil, asClient(tok)...).json(t); st["status"] != "active" || st["error"] != nil {
		t.Fatalf("after a delivery: %v %v", st["status"], st["error"])
	}

	// The endpoint fails: retried after 10s, then 20s, and the
	// Subscription says so; then it recovers.
	rcv.status.Store(http.StatusInternalServerError)
	must(t, s.do("POST", "/fhir/Observation", coded(patient, "8867-4")), 201)
	run := func(want notify.Result) {
		t.Helper()
		res, err := d.RunOnce(context.Background())
		if err != nil || res != want {
			t.Fatalf("run at +%v: %+v, %v; want %+v", s.clock.Now(), res, err, want)
		}
	}
	run(notify.Result{Claimed: 1, Failed: 1})
	if st := s.do("GET", "/fhir/Subscription/"+id, nil, asClient(tok)...).json(t); st["status"] != "error" || st["error"] != "the endpoint answered 500" {
		t.Fatalf("after a failure: %v %v", st["status"], st["error"])
	}
	s.clock.Advance(9 * time.Second)
	run(notify.Result{})
	s.clock.Advance(time.Second)
	run(notify.Result{Claimed: 1, Failed: 1})
	s.clock.Advance(19 * time.Second)
	run(notify.Result{})
	rcv.status.Store(http.StatusNoContent)
	s.clock.Advance(time.Second)
	run(notify.Result{Claimed: 1, Sent: 1})
	if st := s.do("GET", "/fhir/Subscription/"+id, nil, asClient(tok)...).json(t); st["status"] != "active" {
		t.Fatalf("after recovery: %v", st["status"])
	}
	if n := len(rcv.received()); n != 4 {
		t.Fatalf("%d requests reached the endpoint, want 4", n)
	}
}

// TestSubscriptionEndpointRefused: catalogue C6. An endpoint that is not
// https, or whose host is or resolves to a loopback, private,
// link-local, unique-local, multicast or unspecified address, is refused
// with 400 when the Subscription is written, and nothing is stored.
func TestSubscriptionEndpointRefused(t *testing.T) {
	s := newStack(t)
	_, tok := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	for _, ep := range []string{
		"http://example.com/hook", "file:///etc/passwd", "https://127.0.0.1/hook", "https://localhost:8443/hook",
		"https://10.0.0.1/hook", "https://172.16.0.1/hook", "https://192.168.1.1/hook", "https://169.254.169.254/latest/meta-data",
		"https://[::1]/hook", "https://[fe80::1]/hook", "https://[fd00::1]/hook", "https://224.0.0.1/hook", "https://0.0.0.0/hook",
		"https://[::ffff:127.0.0.1]/hook", "https://user:pw@example.com/hook",
	} {
		r := s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code=1234-5", ep, ""), asClient(tok)...)
		if r.status != 400 || r.header.Get(api.SubscriptionSecretHeader) != "" {
			t.Errorf("%s: status %d, %s", ep, r.status, r.body)
		}
	}
	if n := s.do("GET", "/fhir/Subscription", nil, asClient(tok)...).json(t)["total"]; n != 0.0 {
		t.Fatalf("%v Subscriptions stored", n)
	}
}

// TestSubscriptionRules: what a Subscription write must be. A person's
// token, a criteria the owner may not search, a channel other than
// rest-hook, a channel.header, a conditional create, a PUT that would
// create one, and a transaction entry creating one are all refused; the
// owner may turn it off, which drops what is pending; a client revoked
// after subscribing gets nothing delivered and the Subscription says so.
func TestSubscriptionRules(t *testing.T) {
	rcv := newReceiver(t)
	s := newStackWith(t, stackOptions{endpoints: rcv.guard()})
	_, tok := s.serviceToken("system/Observation.s", "system/Subscription.cruds")
	hook := rcv.srv.URL + "/hook"
	for name, tc := range map[string]struct {
		body    map[string]any
		headers []string
		want    int
	}{
		"criteria type not searchable": {subscriptionBody("Condition?code=1", hook, ""), asClient(tok), 403},
		"criteria on Subscription":     {subscriptionBody("Subscription?status=active", hook, ""), asClient(tok), 400},
		"criteria with _include":       {subscriptionBody("Observation?_include=Observation:subject", hook, ""), asClient(tok), 400},
		"unknown criteria parameter":   {subscriptionBody("Observation?nonsense=1", hook, ""), asClient(tok), 400},
		"bad payload":                  {subscriptionBody("Observation?code=1", hook, "text/plain"), asClient(tok), 400},
		"conditional create":           {subscriptionBody("Observation?code=1", hook, ""), append(asClient(tok), "If-None-Exist", "status=active"), 400},
	} {
		if r := s.do("POST", "/fhir/Subscription", tc.body, tc.headers...); r.status != tc.want {
			t.Errorf("%s: status %d, want %d: %s", name, r.status, tc.want, r.body)
		}
	}
	email := subscriptionBody("Observation?code=1", hook, "")
	email["channel"] = map[string]any{"type": "email", "endpoint": "mailto:a@example.com"}
	must(t, s.do("POST", "/fhir/Subscription", email, asClient(tok)...), 400)
	header := subscriptionBody("Observation?code=1", hook, "")
	header["channel"].(map[string]any)["header"] = []any{"Authorization: Bearer x"}
	must(t, s.do("POST", "/fhir/Subscription", header, asClient(tok)...), 400)
	put := subscriptionBody("Observation?code=1", hook, "")
	put["id"] = "chosen"
	must(t, s.do("PUT", "/fhir/Subscription/chosen", put, asClient(tok)...), 400)
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"resource": subscriptionBody("Observation?code=1", hook, ""), "request": map[string]any{"method": "POST", "url": "Subscription"}}}}
	if r := s.do("POST", "/fhir", tx, asClient(tok)...); r.status < 400 {
		t.Fatalf("transaction created a Subscription: %d %s", r.status, r.body)
	}

	ownerID, owner := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	r := must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation", hook, ""), asClient(owner)...), 201)
	id := r.json(t)["id"].(string)
	patient := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient"}), 201).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/Observation", coded(patient, "1")), 201)
	// Turned off by its owner: the pending notification is dropped.
	cur := r.json(t)
	cur["status"] = "off"
	must(t, s.do("PUT", "/fhir/Subscription/"+id, cur, asClient(owner)...), 200)
	if n, _ := s.db.PendingNotifications(context.Background()); n != 0 {
		t.Fatalf("%d pending after off", n)
	}
	if st := s.do("GET", "/fhir/Subscription/"+id, nil, asClient(owner)...).json(t)["status"]; st != "off" {
		t.Fatalf("status %v", st)
	}
	cur["status"] = "requested"
	must(t, s.do("PUT", "/fhir/Subscription/"+id, cur, asClient(owner)...), 200)
	must(t, s.do("POST", "/fhir/Observation", coded(patient, "1")), 201)
	if err := s.db.RevokeClient(context.Background(), ownerID); err != nil {
		t.Fatal(err)
	}
	d, err := notify.New(notify.Config{Queue: s.db, Records: s.rec, Client: rcv.guard().Client()})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.RunOnce(context.Background()); err != nil || res.Skipped != 1 || len(rcv.received()) != 0 {
		t.Fatalf("revoked owner: %+v, %v, %d received", res, err, len(rcv.received()))
	}
	row, err := s.db.Subscription(context.Background(), id)
	if err != nil || row.Status != store.SubscriptionError || !strings.Contains(row.Error, "owning client") {
		t.Fatalf("revoked owner's subscription: %+v, %v", row, err)
	}
}

// TestSubscriptionOutboxAfterCrash: a notification committed with its
// write is delivered although the dispatcher that claimed it stopped
// before sending (as a crashed process would): once its lease runs out,
// another dispatcher (another replica, or the restarted process) delivers
// it, once.
func TestSubscriptionOutboxAfterCrash(t *testing.T) {
	rcv := newReceiver(t)
	s := newStackWith(t, stackOptions{clocked: true, endpoints: rcv.guard()})
	s.clock.Freeze()
	_, owner := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation", rcv.srv.URL+"/hook", ""), asClient(owner)...), 201)
	patient := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient"}), 201).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/Observation", coded(patient, "1")), 201)
	// The crashed dispatcher: it claimed the row and never finished it.
	claimed, err := s.db.ClaimNotifications(context.Background(), "crashed", s.clock.Now(), s.clock.Now().Add(5*time.Minute), 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	d, err := notify.New(notify.Config{Queue: s.db, Records: s.rec, Client: rcv.guard().Client(), Now: s.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.RunOnce(context.Background()); err != nil || res.Claimed != 0 {
		t.Fatalf("claimed under another's lease: %+v, %v", res, err)
	}
	s.clock.Advance(5 * time.Minute)
	if res, err := d.RunOnce(context.Background()); err != nil || res.Sent != 1 {
		t.Fatalf("after the lease: %+v, %v", res, err)
	}
	if got := rcv.received(); len(got) != 1 || len(got[0].body) != 0 || got[0].header.Get("Content-Type") != "" {
		t.Fatalf("received %d, want one notification without a body (no payload)", len(got))
	}
	if n, _ := s.db.PendingNotifications(context.Background()); n != 0 {
		t.Fatalf("%d pending after delivery", n)
	}
}

// TestSubscriptionAuthorization: the authorisation cells of
// Subscriptions. Only the owning service sees or changes its
// Subscription; another service with every Subscription scope gets what
// an unknown id gets; a service without Subscription scopes is refused
// (403); a person's token creates none. Every cell is recorded.
func TestSubscriptionAuthorization(t *testing.T) {
	s := newStack(t)
	_, owner := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	_, other := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	_, obsOnly := s.serviceToken("system/Observation.rs")
	person := s.adminToken("subs.admin")
	body := subscriptionBody("Observation?code=1", "https://93.184.215.14/hook", "")
	r := must(t, s.do("POST", "/fhir/Subscription", body, asClient(owner)...), 201)
	sub := r.json(t)
	id := sub["id"].(string)
	path := "/fhir/Subscription/" + id
	unknown := s.do("GET", "/fhir/Subscription/nope", nil, asClient(other)...)
	type op struct {
		name, method, path string
		body               any
	}
	ops := []op{
		{"create", "POST", "/fhir/Subscription", body},
		{"read", "GET", path, nil},
		{"vread", "GET", path + "/_history/1", nil},
		{"history", "GET", path + "/_history", nil},
		{"update", "PUT", path, sub},
		{"delete", "DELETE", path, nil},
	}
	cells := map[string]map[string]int{
		"other service":   {"create": 201, "read": 404, "vread": 404, "history": 404, "update": 404, "delete": 404},
		"no Subscription": {"create": 403, "read": 403, "vread": 403, "history": 403, "update": 403, "delete": 403},
		"person (admin)":  {"create": 403, "read": 403, "vread": 403, "history": 403, "update": 403, "delete": 403},
		"owner (last)":    {"create": 201, "read": 200, "vread": 200, "history": 200, "update": 200, "delete": 204},
	}
	tokens := map[string]string{"other service": other, "no Subscription": obsOnly, "person (admin)": person, "owner (last)": owner}
	for _, who := range []string{"other service", "no Subscription", "person (admin)", "owner (last)"} {
		for _, o := range ops {
			before := ledgerSize(t, s)
			got := s.do(o.method, o.path, o.body, asClient(tokens[who])...)
			want := cells[who][o.name]
			if got.status != want {
				t.Errorf("%s %s: status %d, want %d: %.300s", who, o.name, got.status, want, got.body)
			}
			if want == 404 && fmt.Sprint(got.json(t)["issue"]) != fmt.Sprint(unknown.json(t)["issue"]) {
				t.Errorf("%s %s: a hidden Subscription answers unlike an unknown one", who, o.name)
			}
			if n := ledgerSize(t, s) - before; n < 1 {
				t.Errorf("%s %s: not recorded", who, o.name)
			}
		}
	}
	// Deleted: the owner is told it is gone; anyone else gets what an
	// unknown id gets, not a 410 that would tell it existed.
	must(t, s.do("GET", path, nil, asClient(owner)...), 410)
	for _, p := range []string{path, path + "/_history/1", path + "/_history"} {
		if r := s.do("GET", p, nil, asClient(other)...); r.status != 404 || fmt.Sprint(r.json(t)["issue"]) != fmt.Sprint(unknown.json(t)["issue"]) {
			t.Errorf("another client's %s after deletion: %d %s", p, r.status, r.body)
		}
	}
	// A search lists the caller's own only: the other service's one, and
	// the owner's two (made by its create cell and here).
	must(t, s.do("POST", "/fhir/Subscription", body, asClient(owner)...), 201)
	for tok, want := range map[string]float64{other: 1, owner: 2} {
		if n := s.do("GET", "/fhir/Subscription?_total=accurate", nil, asClient(tok)...).json(t)["total"]; n != want {
			t.Errorf("search total %v, want %v", n, want)
		}
	}
}

// TestSubscriptionBreachScope: a delivery is a disclosure to the owning
// client: breach scoping of that client (catalogue G5) lists it and the
// patient it was about.
func TestSubscriptionBreachScope(t *testing.T) {
	rcv := newReceiver(t)
	s := newStackWith(t, stackOptions{endpoints: rcv.guard()})
	owner, tok := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation", rcv.srv.URL+"/hook", "application/fhir+json"), asClient(tok)...), 201)
	patient := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient"}), 201).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/Observation", coded(patient, "1")), 201)
	d, err := notify.New(notify.Config{Queue: s.db, Records: s.rec, Client: rcv.guard().Client()})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.RunOnce(context.Background()); err != nil || r.Sent != 1 {
		t.Fatalf("delivery: %+v, %v", r, err)
	}
	s.flushLedger()
	_, signer := s.checkpoint(t)
	now := time.Now()
	rep, err := incident.Scope(context.Background(), s.db, signer.Verifier(), incident.Query{Client: owner, From: now.Add(-time.Hour), To: now.Add(time.Minute)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Actions[records.ActionNotify] != 1 || len(rep.Patients) != 1 || rep.Patients[0].ID != patient {
		t.Fatalf("breach scope of the owner: actions %v, patients %+v", rep.Actions, rep.Patients)
	}
}

// TestSubscriptionCap: a client holds at most MaxSubscriptions
// subscriptions that are not off. One more is refused with 409 and
// nothing is written; turning one off makes room; turning it back on
// past the cap is refused; another client has its own allowance. On
// PostgreSQL, concurrent creates by one client never pass the cap.
func TestSubscriptionCap(t *testing.T) { testSubscriptionCap(t, stackOptions{}) }

func TestSubscriptionCapPostgres(t *testing.T) {
	testSubscriptionCap(t, stackOptions{openStore: postgresStore})
}

func testSubscriptionCap(t *testing.T, o stackOptions) {
	rcv := newReceiver(t)
	o.endpoints, o.maxSubscriptions = rcv.guard(), 2
	s := newStackWith(t, o)
	hook := rcv.srv.URL + "/hook"
	_, tok := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	first := must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation", hook, ""), asClient(tok)...), 201).json(t)
	must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code=1", hook, ""), asClient(tok)...), 201)
	r := must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code=2", hook, ""), asClient(tok)...), 409)
	if !strings.Contains(string(r.body), "not off") {
		t.Fatalf("refusal does not say why: %s", r.body)
	}
	if got := s.do("GET", "/fhir/Subscription?_summary=count", nil, asClient(tok)...).json(t)["total"]; got != float64(2) {
		t.Fatalf("%v Subscriptions after a refused create, want 2", got)
	}
	first["status"] = "off"
	must(t, s.do("PUT", "/fhir/Subscription/"+first["id"].(string), first, asClient(tok)...), 200)
	must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code=2", hook, ""), asClient(tok)...), 201)
	first["status"] = "requested"
	must(t, s.do("PUT", "/fhir/Subscription/"+first["id"].(string), first, asClient(tok)...), 409)

	_, other := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation", hook, ""), asClient(other)...), 201)

	// Concurrent creates by one new client: exactly the cap succeeds.
	_, racer := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	const n = 6
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code="+strconv.Itoa(i), hook, ""), asClient(racer)...).status
		}()
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		switch c {
		case 201:
			created++
		case 409:
		default:
			t.Errorf("concurrent create answered %d", c)
		}
	}
	if created != 2 {
		t.Fatalf("%d concurrent creates succeeded, want the cap of 2", created)
	}
}
