package credential

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// notBreached builds a password of n runes that is on no list.
func notBreached(n int) string {
	const alphabet = "kq7Zx!vP9 wR#mT2"
	var b strings.Builder
	for i := range n {
		b.WriteByte(alphabet[(i*7+3)%len(alphabet)])
	}
	return b.String()
}

// emoji returns n different four-byte runes.
func emoji(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteRune(rune(0x1F300 + i))
	}
	return b.String()
}

func TestPolicyLength(t *testing.T) {
	for _, tc := range []struct {
		name string
		pw   string
		want error
	}{
		{"empty", "", ErrPasswordTooShort},
		{"11", notBreached(11), ErrPasswordTooShort},
		{"12", notBreached(12), nil},
		{"64", notBreached(64), nil},
		{"128", notBreached(128), nil},
		{"129", notBreached(129), ErrPasswordTooLong},
		{"1000", notBreached(1000), ErrPasswordTooLong},
		// Runes are counted, not bytes: 11 kana are 33 bytes but too short,
		// 12 are enough, and 128 four-byte runes (512 bytes) are accepted.
		{"11 kana", strings.Repeat("パ", 5) + strings.Repeat("ス", 6), ErrPasswordTooShort},
		{"12 kana", "パスワードはとても長いで", nil},
		{"128 emoji", emoji(128), nil},
		{"129 emoji", emoji(129), ErrPasswordTooLong},
		{"spaces", "four words with spaces", nil},
		{"not UTF-8", notBreached(12) + "\xff", ErrPasswordNotUTF8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPolicy(tc.pw)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("CheckPolicy(%d runes) = %v, want %v", utf8.RuneCountInString(tc.pw), err, tc.want)
			}
		})
	}
}

func TestPolicyBreached(t *testing.T) {
	for _, pw := range []string{
		// verbatim entries of 12 or more characters, in any case
		"123qweasdzxc", "1qaz2wsx3edc", "QWERTY123456", "LeaveMeAlone",
		"qwertyuiopasdfghjkl",
		// common stems padded to 12 with up to five digits, symbols or spaces
		"password1234", "Password2024!", "iloveyou123 ", "sunshine!!!!",
		"PRINCESS1987", "letmein2024!",
		// short patterns repeated
		strings.Repeat(" ", 12), strings.Repeat("é", 20), "abcabcabcabc", "xyxyxyxyxyxyx", "abcabcabcabcab",
	} {
		err := CheckPolicy(pw)
		if !errors.Is(err, ErrPasswordBreached) {
			t.Errorf("CheckPolicy(breached #%d) = %v, want ErrPasswordBreached", len(pw), err)
		}
		if err != nil && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(pw)) {
			t.Errorf("the error echoes the password")
		}
	}
	for _, pw := range []string{
		"password is not enough", // stem followed by letters, not padding
		"password123456",         // six digits of padding: not stripped (and not on the list)
		"tr0ub4dor&3 horse",
		"correct horse battery staple",
	} {
		if err := CheckPolicy(pw); err != nil {
			t.Errorf("CheckPolicy(%d chars) = %v, want nil", len(pw), err)
		}
	}
}

// TestEveryLongEntryRefused checks the whole list: every entry of 12 or
// more characters is refused, in lower and upper case.
func TestEveryLongEntryRefused(t *testing.T) {
	list := breachedList()
	if len(list) != 68117 {
		t.Errorf("breached list has %d entries; the package doc says 68,117", len(list))
	}
	if !slices.IsSorted(list) {
		t.Fatal("breached list is not sorted: binary search would miss entries")
	}
	long := 0
	for _, e := range list {
		if e != strings.ToLower(e) {
			t.Fatalf("entry #%d is not lower case", long)
		}
		n := utf8.RuneCountInString(e)
		if n < MinPasswordLen || n > MaxPasswordLen {
			continue
		}
		long++
		if CheckPolicy(e) == nil || CheckPolicy(strings.ToUpper(e)) == nil {
			t.Fatalf("a breached entry of %d characters is accepted", n)
		}
	}
	if long < 40000 {
		t.Errorf("only %d entries of 12 to 128 characters; want the 43,940 of the source", long)
	}
}

func TestPolicyErrorsDoNotEchoPassword(t *testing.T) {
	for _, pw := range []string{"short pw", notBreached(200), "qwertyuiopasdfgh", "a\xffbcdefghijklmn"} {
		err := CheckPolicy(pw)
		if err == nil {
			t.Fatalf("CheckPolicy accepted a bad password")
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), pw[:6]) {
			t.Errorf("error %q contains the password", err)
		}
	}
}

func FuzzCheckPolicy(f *testing.F) {
	f.Add("correct horse battery staple")
	f.Add("Password2024!")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, pw string) {
		err := CheckPolicy(pw)
		n := utf8.RuneCountInString(pw)
		if err == nil && (!utf8.ValidString(pw) || n < MinPasswordLen || n > MaxPasswordLen) {
			t.Fatalf("accepted a password of %d runes (valid UTF-8: %v)", n, utf8.ValidString(pw))
		}
		if err == nil && isBreached(strings.ToLower(pw)) {
			t.Fatalf("accepted a breached password")
		}
	})
}

func BenchmarkCheckPolicy(b *testing.B) {
	breachedList()
	for b.Loop() {
		CheckPolicy("correct horse battery staple")
	}
}
