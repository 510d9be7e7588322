package main

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestServeSubscription: ward serve delivers a Subscription's
// notification to an HTTPS endpoint the operator allow-listed
// (--subscription-allow, --subscription-ca), signed; a notification whose
// delivery failed is still delivered after a restart, from the outbox.
func TestServeSubscription(t *testing.T) {
	var (
		status atomic.Int32
		mu     sync.Mutex
		got    []http.Header
	)
	status.Store(http.StatusInternalServerError)
	rcv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		w.WriteHeader(int(status.Load()))
	}))
	defer rcv.Close()
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "receiver-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rcv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	args := []string{"--dev", "--data", data, "--subscription-allow", "127.0.0.1", "--subscription-ca", ca}
	srv := startServe(t, args...)
	c := dial(t, data)
	status0, sub := c.do("POST", "/Subscription", map[string]any{"resourceType": "Subscription", "status": "requested", "reason": "e2e",
		"criteria": "Observation", "channel": map[string]any{"type": "rest-hook", "endpoint": rcv.URL + "/hook"}})
	if status0 != http.StatusCreated {
		t.Fatalf("create Subscription: %d %v", status0, sub)
	}
	id, _ := sub["id"].(string)
	obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}}
	if st, _ := c.do("POST", "/Observation", obs); st != http.StatusCreated {
		t.Fatalf("create Observation: %d", st)
	}
	waitFor(t, "a first attempt", func() bool { return received() >= 1 })
	waitFor(t, "the error on the Subscription", func() bool {
		_, s := c.do("GET", "/Subscription/"+id, nil)
		return s["status"] == "error" && s["error"] == "the endpoint answered 500"
	})
	srv.stopOK()
	// Restarted, with the endpoint back: the outbox still holds the
	// notification and the new process delivers it.
	status.Store(http.StatusOK)
	startServe(t, args...)
	c = dial(t, data)
	waitFor(t, "delivery after the restart", func() bool {
		_, s := c.do("GET", "/Subscription/"+id, nil)
		return s["status"] == "active"
	})
	mu.Lock()
	defer mu.Unlock()
	last := got[len(got)-1]
	if last.Get("X-Ward-Subscription") != id || !strings.HasPrefix(last.Get("X-Ward-Signature"), "t=") {
		t.Fatalf("headers of the delivery: %v", last)
	}
}

// waitFor polls cond until it holds, for at most 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
