package notify

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/records"
)

// SignatureHeader is the header that carries a notification's signature.
const SignatureHeader = "X-Ward-Signature"

// Sign returns the signature header value of body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>".
func Sign(secret records.SubscriptionSecret, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret records.SubscriptionSecret, ts string, body []byte) []byte {
	m := secret.MAC()
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a signature header value against body, as a receiver
// does: the MAC must match (compared in constant time) and t must be
// within tolerance of now, so that a captured request cannot be replayed
// later.
func Verify(secret records.SubscriptionSecret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("notify: malformed signature header")
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(secret, ts, body)) {
		return errors.New("notify: signature does not match")
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return errors.New("notify: signature timestamp outside the tolerance")
	}
	return nil
}
