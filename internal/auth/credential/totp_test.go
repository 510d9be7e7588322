package credential

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"testing"
	"time"
)

// rfcSecret is the SHA-1 seed of RFC 6238 Appendix B.
var rfcSecret = []byte("12345678901234567890")

// refCode is an independent RFC 4226 HOTP (HMAC-SHA-1, dynamic
// truncation, 6 digits), so the tests do not trust the library they check.
func refCode(secret []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

// TestTOTPRFC6238Vectors uses RFC 6238 Appendix B's SHA-1 rows. The RFC's
// codes have 8 digits; a 6-digit code is the same value mod 10^6, its last
// six digits.
func TestTOTPRFC6238Vectors(t *testing.T) {
	for _, v := range []struct {
		unix  int64
		rfc8  string
		step  int64
		code6 string
	}{
		{59, "94287082", 0x1, "287082"},
		{1111111109, "07081804", 0x23523EC, "081804"},
		{1111111111, "14050471", 0x23523ED, "050471"},
		{1234567890, "89005924", 0x273EF07, "005924"},
		{2000000000, "69279037", 0x3F940AA, "279037"},
		{20000000000, "65353130", 0x27BC86AA, "353130"},
	} {
		if v.code6 != v.rfc8[2:] {
			t.Fatalf("table error at %d", v.unix)
		}
		if got := refCode(rfcSecret, v.step); got != v.code6 {
			t.Errorf("reference HOTP at step %#x = %s, RFC says %s", v.step, got, v.code6)
		}
		step, err := CheckTOTP(rfcSecret, v.code6, time.Unix(v.unix, 0), -1)
		if err != nil || step != v.step {
			t.Errorf("CheckTOTP(RFC code at %d) = %#x, %v; want %#x, nil", v.unix, step, err, v.step)
		}
		// As apps show it, with a space.
		if _, err := CheckTOTP(rfcSecret, v.code6[:3]+" "+v.code6[3:], time.Unix(v.unix, 0), -1); err != nil {
			t.Errorf("code with a space: %v", err)
		}
	}
}

func TestTOTPWindow(t *testing.T) {
	now := time.Unix(1_700_000_015, 0) // mid-step
	cur := now.Unix() / 30
	seen := map[string]bool{}
	for d := int64(-3); d <= 3; d++ {
		seen[refCode(rfcSecret, cur+d)] = true
	}
	if len(seen) != 7 {
		t.Fatal("codes in the window collide; pick another time")
	}
	for d := int64(-3); d <= 3; d++ {
		step, err := CheckTOTP(rfcSecret, refCode(rfcSecret, cur+d), now, -1)
		switch {
		case d >= -1 && d <= 1:
			if err != nil || step != cur+d {
				t.Errorf("step %+d: CheckTOTP = %d, %v; want %d, nil", d, step, err, cur+d)
			}
		default:
			if !errors.Is(err, ErrTOTPWrong) {
				t.Errorf("step %+d: CheckTOTP = %d, %v; want ErrTOTPWrong", d, step, err)
			}
		}
	}
	// The window follows the clock: the first and last second of a step.
	start := time.Unix(cur*30, 0)
	if _, err := CheckTOTP(rfcSecret, refCode(rfcSecret, cur-2), start, -1); !errors.Is(err, ErrTOTPWrong) {
		t.Errorf("two steps old at a step's first second: %v, want ErrTOTPWrong", err)
	}
	if _, err := CheckTOTP(rfcSecret, refCode(rfcSecret, cur-1), start.Add(29*time.Second), -1); err != nil {
		t.Errorf("previous step at a step's last second: %v, want nil", err)
	}
}

func TestTOTPReplay(t *testing.T) {
	now := time.Unix(1_700_000_015, 0)
	cur := now.Unix() / 30
	code := refCode(rfcSecret, cur)
	step, err := CheckTOTP(rfcSecret, code, now, -1)
	if err != nil || step != cur {
		t.Fatalf("first use: %d, %v", step, err)
	}
	// The same code again, also a few seconds later in the same step.
	for _, at := range []time.Time{now, now.Add(10 * time.Second), now.Add(40 * time.Second)} {
		if _, err := CheckTOTP(rfcSecret, code, at, step); !errors.Is(err, ErrTOTPReplayed) {
			t.Errorf("replayed code at +%v: %v, want ErrTOTPReplayed", at.Sub(now), err)
		}
	}
	// A code older than the last one used is refused too.
	if _, err := CheckTOTP(rfcSecret, refCode(rfcSecret, cur-1), now, step); !errors.Is(err, ErrTOTPReplayed) {
		t.Errorf("older code after a newer one: %v, want ErrTOTPReplayed", err)
	}
	// The next step's code is still good once.
	next, err := CheckTOTP(rfcSecret, refCode(rfcSecret, cur+1), now, step)
	if err != nil || next != cur+1 {
		t.Errorf("next step: %d, %v; want %d, nil", next, err, cur+1)
	}
}

func TestTOTPMalformed(t *testing.T) {
	now := time.Unix(1_700_000_015, 0)
	for _, code := range []string{"", "12345", "1234567", "12345a", "１２３４５６", "+12345", "-12345", "123\n456", "12345678901234567890"} {
		if _, err := CheckTOTP(rfcSecret, code, now, -1); !errors.Is(err, ErrTOTPMalformed) {
			t.Errorf("CheckTOTP(%q) = %v, want ErrTOTPMalformed", code, err)
		}
	}
	if _, err := CheckTOTP(rfcSecret[:15], "123456", now, -1); err == nil || errors.Is(err, ErrTOTPWrong) {
		t.Errorf("120-bit secret: %v, want a distinct error", err)
	}
}

func TestNewTOTP(t *testing.T) {
	secret, uri, img, err := NewTOTP("Ward", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 20 {
		t.Errorf("secret has %d bytes, want 20 (160 bits)", len(secret))
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Ward:alice@example.org" {
		t.Errorf("URI %s://%s%s, want otpauth://totp/Ward:alice@example.org", u.Scheme, u.Host, u.Path)
	}
	want := map[string]string{"secret": b32.EncodeToString(secret), "issuer": "Ward", "algorithm": "SHA1", "digits": "6", "period": "30"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("URI %s = %q, want %q", k, q.Get(k), v)
		}
	}
	pic, err := png.Decode(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("QR image is not a PNG: %v", err)
	}
	if b := pic.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("QR image is %v, want 256x256", b)
	}
	// The enrolled secret works.
	now := time.Now()
	if _, err := CheckTOTP(secret, refCode(secret, now.Unix()/30), now, -1); err != nil {
		t.Errorf("code from the new secret: %v", err)
	}
	other, _, _, err := NewTOTP("Ward", "alice@example.org")
	if err != nil || bytes.Equal(other, secret) {
		t.Errorf("two enrolments got the same secret")
	}
	for _, bad := range [][2]string{{"", "alice"}, {"Ward", ""}, {"Wa:rd", "alice"}, {"Ward", "al:ice"}} {
		if _, _, _, err := NewTOTP(bad[0], bad[1]); err == nil {
			t.Errorf("NewTOTP(%q, %q): no error", bad[0], bad[1])
		}
	}
}

func FuzzCheckTOTP(f *testing.F) {
	f.Add("287082", int64(59), int64(-1))
	f.Add("287 082", int64(59), int64(1))
	f.Add("", int64(-100), int64(0))
	f.Fuzz(func(t *testing.T, code string, unix, last int64) {
		step, err := CheckTOTP(rfcSecret, code, time.Unix(unix, 0), last)
		if err != nil {
			return
		}
		if step <= last || step < unix/30-2 || step > unix/30+2 {
			t.Fatalf("accepted step %d at time %d after step %d", step, unix, last)
		}
		if refCode(rfcSecret, step) != string(bytes.ReplaceAll([]byte(code), []byte(" "), nil)) {
			t.Fatalf("accepted %q, the code of step %d is %s", code, step, refCode(rfcSecret, step))
		}
	})
}
