package credential

import (
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Password length limits, in Unicode code points (runes).
const (
	MinPasswordLen = 12
	MaxPasswordLen = 128
)

// maxPaddingLen is how many trailing digits, symbols or spaces CheckPolicy
// strips to find a breached stem.
const maxPaddingLen = 5

// Errors of CheckPolicy. Callers show the person what is wrong, so each is
// its own sentinel; none contains the password.
var (
	ErrPasswordTooShort = errors.New("credential: password must have at least 12 characters")
	ErrPasswordTooLong  = errors.New("credential: password must have at most 128 characters")
	ErrPasswordNotUTF8  = errors.New("credential: password is not valid UTF-8 text")
	ErrPasswordBreached = errors.New("credential: password is too common: it is on a list of breached passwords or repeats a short pattern")
)

// CheckPolicy reports whether pw may be chosen as a new password. It
// accepts 12 to 128 characters counted as runes (no Unicode normalisation),
// including spaces and any Unicode letter or symbol, and refuses, whatever
// the letter case:
//   - a password on the bundled breached list;
//   - a breached stem of 7 or more characters followed by one to five
//     digits, symbols or spaces, the padding people add to meet a length
//     rule ("Password2024!", "iloveyou123 "). Cracking tools try these
//     first (append rules), and the list, collected from sites that asked
//     for fewer characters, holds few of them verbatim;
//   - one to three characters repeated ("aaaaaaaaaaaa", "abcabcabcabc"),
//     which NIST SP 800-63B 5.1.1.2 names as values to refuse.
func CheckPolicy(pw string) error {
	if !utf8.ValidString(pw) {
		return ErrPasswordNotUTF8
	}
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen {
		return ErrPasswordTooShort
	}
	if n > MaxPasswordLen {
		return ErrPasswordTooLong
	}
	lower := strings.ToLower(pw)
	if isBreached(lower) || repeatsShortPattern(lower) {
		return ErrPasswordBreached
	}
	stem := strings.TrimRightFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) })
	if pad := utf8.RuneCountInString(lower[len(stem):]); pad >= 1 && pad <= maxPaddingLen && isBreached(stem) {
		return ErrPasswordBreached
	}
	return nil
}

// repeatsShortPattern reports whether pw is a pattern of at most
// three runes repeated.
func repeatsShortPattern(pw string) bool {
	r := []rune(pw)
	for k := 1; k <= 3; k++ {
		if len(r) > k && slices.Equal(r[k:], r[:len(r)-k]) {
			return true
		}
	}
	return false
}
