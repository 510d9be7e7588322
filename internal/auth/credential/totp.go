package credential

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what authenticator apps assume when a URI omits them,
// and what they most reliably honour when it does not.
const (
	totpPeriod     = 30 // seconds
	totpDigits     = 6
	totpSecretSize = 20 // bytes: 160 bits, RFC 4226 section 4 R6
	totpSkew       = 1  // steps accepted either side of the current one
	qrSize         = 256
)

// Errors of CheckTOTP, for the audit entry; the person signing in sees one
// failure whatever the cause.
var (
	ErrTOTPMalformed = errors.New("credential: malformed TOTP code")
	ErrTOTPWrong     = errors.New("credential: wrong or expired TOTP code")
	ErrTOTPReplayed  = errors.New("credential: TOTP code already used")
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTP makes a new random 160-bit TOTP secret for account at issuer, and
// returns it with the otpauth:// key URI that enrols it in an
// authenticator app and that URI as a QR code PNG. The secret is a shared
// secret: store it sealed. The URI and PNG contain it: show them once, to
// the account's owner, and never log them. Issuer and account must be
// non-empty and contain no colon (the URI's label separator).
func NewTOTP(issuer, account string) (secret []byte, uri string, pngImage []byte, err error) {
	if issuer == "" || account == "" || strings.Contains(issuer, ":") || strings.Contains(account, ":") {
		return nil, "", nil, errors.New("credential: TOTP issuer and account must be non-empty and contain no colon")
	}
	secret = make([]byte, totpSecretSize)
	rand.Read(secret)
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		Secret:      secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, "", nil, fmt.Errorf("credential: TOTP key: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return nil, "", nil, fmt.Errorf("credential: TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, "", nil, fmt.Errorf("credential: TOTP QR code: %w", err)
	}
	return secret, key.URL(), buf.Bytes(), nil
}

// CheckTOTP checks a 6-digit RFC 6238 code (spaces ignored, so "123 456"
// as apps display it works) against secret at time now. It accepts the
// code of the current 30-second step or of one step either side, and only
// for a step greater than lastStep, the step of the last code this account
// used (-1 when none). On success it returns the step the code belongs to:
// the caller stores it as the new lastStep, with a compare-and-swap so that
// two concurrent uses of one code cannot both succeed.
//
// Errors: ErrTOTPMalformed (not 6 ASCII digits), ErrTOTPReplayed (the code
// matches a step not after lastStep), ErrTOTPWrong (no match in the
// window: a wrong or expired code). Every code in the window is computed
// and compared in constant time whatever the outcome.
func CheckTOTP(secret []byte, code string, now time.Time, lastStep int64) (step int64, err error) {
	if len(secret) < 16 {
		return 0, errors.New("credential: TOTP secret shorter than 128 bits")
	}
	code = strings.ReplaceAll(code, " ", "")
	valid := len(code) == totpDigits
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			valid = false
		}
	}
	if !valid {
		return 0, ErrTOTPMalformed
	}
	key := b32.EncodeToString(secret)
	current := floorDiv(now.Unix(), totpPeriod)
	var fresh, replayed int64 = -1, -1 // first matching step after lastStep, latest one not after it
	for s := current - totpSkew; s <= current+totpSkew; s++ {
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(key, uint64(s), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, fmt.Errorf("credential: TOTP: %w", err)
		}
		match := subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1
		switch {
		case match && s > lastStep && fresh < 0:
			fresh = s
		case match && s <= lastStep:
			replayed = s
		}
	}
	switch {
	case fresh >= 0:
		return fresh, nil
	case replayed >= 0:
		return 0, ErrTOTPReplayed
	default:
		return 0, ErrTOTPWrong
	}
}

// floorDiv is a / b rounded towards minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
