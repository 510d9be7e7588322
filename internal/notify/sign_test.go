package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/records"
)

// TestSignatureTamper: a signature verifies for its body, secret and
// time only: every flipped bit of the body or the MAC, another secret,
// or a time outside the tolerance is refused; the header has the
// documented form.
func TestSignatureTamper(t *testing.T) {
	secret, err := records.ParseSubscriptionSecret(strings.Repeat("A", 43))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := records.ParseSubscriptionSecret(strings.Repeat("B", 43))
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"resourceType":"Bundle","type":"history"}`)
	h := Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1700000000,v1=") || len(h) != len("t=1700000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := Verify(other, h, body, now, 5*time.Minute); err == nil {
		t.Fatal("verified under another secret")
	}
	if err := Verify(secret, h, body, now.Add(6*time.Minute), 5*time.Minute); err == nil {
		t.Fatal("verified outside the tolerance")
	}
	for i := range len(body) * 8 {
		b := []byte(string(body))
		b[i/8] ^= 1 << (i % 8)
		if Verify(secret, h, b, now, time.Minute) == nil {
			t.Fatalf("body bit %d flipped verified", i)
		}
	}
	for i := len("t=1700000000,v1="); i < len(h); i++ {
		b := []byte(h)
		b[i] ^= 1
		if Verify(secret, string(b), body, now, time.Minute) == nil {
			t.Fatalf("header byte %d flipped verified", i)
		}
	}
	if got := secret.String() + " " + secret.GoString(); strings.Contains(got, "AAAA") {
		t.Fatalf("secret printed: %s", got)
	}
}
