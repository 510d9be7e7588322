package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/notify"
)

// BenchmarkSubscriptionWrite measures what live subscriptions add to a
// write: one client creates Observations one after another through
// HTTPS, with no Subscription, with one on Observation, and with ten
// (each adds an outbox row in the write's transaction). Compare ns/op.
func BenchmarkSubscriptionWrite(b *testing.B) {
	for _, n := range []int{0, 1, 10} {
		b.Run(map[int]string{0: "none", 1: "one", 10: "ten"}[n], func(b *testing.B) {
			s := benchStack(b)
			t := &testing.T{}
			_, owner := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
			for range n {
				must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code=http://loinc.org|8867-4", "https://93.184.215.14/hook", ""), asClient(owner)...), 201)
			}
			patient := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient"}), 201).json(t)["id"].(string)
			if t.Failed() {
				b.Fatal("setup failed")
			}
			body := coded(patient, "8867-4")
			b.ResetTimer()
			for b.Loop() {
				if r := s.do("POST", "/fhir/Observation", body); r.status != http.StatusCreated {
					b.Fatalf("status %d", r.status)
				}
			}
			b.StopTimer()
			if p, err := s.db.PendingNotifications(context.Background()); err != nil || p < n*b.N {
				b.Fatalf("pending %d, want at least %d: %v", p, n*b.N, err)
			}
		})
	}
}

// BenchmarkSubscriptionDelivery measures delivery throughput: b.N
// matching writes are made first (not timed), then one dispatcher
// delivers them, with the full resource as payload, to a local HTTPS
// receiver, each decided as the owner, recorded in the ledger, signed
// and sent. It reports notifications/s.
func BenchmarkSubscriptionDelivery(b *testing.B) {
	t := &testing.T{}
	rcv := newReceiver(t)
	s := newStackWith(t, stackOptions{limits: benchLimits, endpoints: rcv.guard()})
	_, owner := s.serviceToken("system/Observation.rs", "system/Subscription.cruds")
	must(t, s.do("POST", "/fhir/Subscription", subscriptionBody("Observation?code=http://loinc.org|8867-4", rcv.srv.URL+"/hook", "application/fhir+json"), asClient(owner)...), 201)
	patient := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient"}), 201).json(t)["id"].(string)
	if t.Failed() {
		b.Fatal("setup failed")
	}
	body := coded(patient, "8867-4")
	inParallel(8, b.N, func(int) bool {
		return s.do("POST", "/fhir/Observation", body).status == http.StatusCreated
	})
	d, err := notify.New(notify.Config{Queue: s.db, Records: s.rec, Client: rcv.guard().Client(), Batch: 64, Workers: 8})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		r, err := d.RunOnce(context.Background())
		if err != nil || r.Claimed == 0 {
			b.Fatalf("run: %+v, %v after %d sent", r, err, sent)
		}
		sent += r.Sent
	}
	b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "notifications/s")
}
