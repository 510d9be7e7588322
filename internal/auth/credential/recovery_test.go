package credential

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var recoveryRE = regexp.MustCompile(`^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`)

func TestRecoveryCodesOnce(t *testing.T) {
	codes, enc, err := NewRecoveryCodes(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Fatalf("%d codes, want 10", len(codes))
	}
	if n, err := RecoveryCodesLeft(enc); n != 10 || err != nil {
		t.Fatalf("RecoveryCodesLeft = %d, %v; want 10", n, err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !recoveryRE.MatchString(c) {
			t.Errorf("code %q is not four groups of four base32 characters", c)
		}
		if seen[c] {
			t.Errorf("duplicate code")
		}
		seen[c] = true
		if strings.Contains(string(enc), strings.ReplaceAll(c, "-", "")) {
			t.Errorf("the stored set contains a code in the clear")
		}
	}
	// Use them in a shuffled order; each works once.
	order := []int{3, 0, 9, 5, 1, 8, 2, 7, 6, 4}
	for i, k := range order {
		before := slices.Clone(enc)
		rest, err := UseRecoveryCode(enc, codes[k])
		if err != nil {
			t.Fatalf("code %d, first use: %v", k, err)
		}
		if !slices.Equal(enc, before) {
			t.Fatal("UseRecoveryCode changed its input")
		}
		if n, _ := RecoveryCodesLeft(rest); n != 9-i {
			t.Fatalf("%d left after %d uses", n, i+1)
		}
		if _, err := UseRecoveryCode(rest, codes[k]); !errors.Is(err, ErrRecoveryCodeWrong) {
			t.Fatalf("code %d, second use: %v, want ErrRecoveryCodeWrong", k, err)
		}
		enc = rest
	}
	for _, c := range codes {
		if _, err := UseRecoveryCode(enc, c); !errors.Is(err, ErrRecoveryCodeWrong) {
			t.Errorf("a used code works on the exhausted set: %v", err)
		}
	}
}

func TestRecoveryCodeNormalisation(t *testing.T) {
	// A set holding one code with letters that look like digits.
	const code = "OIBX-2345-ABCD-EFGH"
	enc := setOf(t, code)
	for _, in := range []string{
		code, "oibx-2345-abcd-efgh", "OIBX2345ABCDEFGH", "oibx 2345 abcd efgh",
		" OIBX-2345-ABCD-EFGH\t", "01bx-2345-abcd-efgh", "0I8X-2345-ABCD-EFGH",
	} {
		if _, err := UseRecoveryCode(enc, in); err != nil {
			t.Errorf("UseRecoveryCode(%q) = %v, want nil", in, err)
		}
	}
	for _, in := range []string{
		"", "OIBX-2345-ABCD-EFG", "OIBX-2345-ABCD-EFGHI", "OIBX-2345-ABCD-EFGJ", "OIBX_2345_ABCD_EFGH",
		"ÖIBX-2345-ABCD-EFGH", "123456", strings.Repeat("A", 1000),
	} {
		if _, err := UseRecoveryCode(enc, in); !errors.Is(err, ErrRecoveryCodeWrong) {
			t.Errorf("UseRecoveryCode(%q) = %v, want ErrRecoveryCodeWrong", in, err)
		}
	}
}

// setOf builds a stored set holding the given code, as NewRecoveryCodes
// would.
func setOf(t *testing.T, code string) []byte {
	t.Helper()
	c, ok := normaliseRecovery(code)
	if !ok {
		t.Fatalf("bad test code %q", code)
	}
	enc := make([]byte, recoveryHeader)
	enc[0] = recoveryVersion
	copy(enc[1:], "0123456789abcdef")
	h := recoveryHash(enc[1:recoveryHeader], c)
	return append(enc, h[:]...)
}

func TestRecoveryEmptyAndMalformedSets(t *testing.T) {
	codes, enc, err := NewRecoveryCodes(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UseRecoveryCode(nil, codes[0]); !errors.Is(err, ErrRecoveryCodeWrong) {
		t.Errorf("nil set: %v, want ErrRecoveryCodeWrong", err)
	}
	for _, bad := range [][]byte{{2}, enc[:len(enc)-1], append(slices.Clone(enc), 0), append([]byte{2}, enc[1:]...)} {
		if _, err := UseRecoveryCode(bad, codes[0]); err == nil || errors.Is(err, ErrRecoveryCodeWrong) {
			t.Errorf("malformed set of %d bytes: %v, want a distinct error", len(bad), err)
		}
	}
	// Flip every bit after the version byte: the code must stop working,
	// or (a bit of the other code's hash) the set must still hold 2 codes.
	for i := 1; i < len(enc); i++ {
		for bit := range 8 {
			bad := slices.Clone(enc)
			bad[i] ^= 1 << bit
			if _, err := UseRecoveryCode(bad, codes[0]); err == nil && i < recoveryHeader+32 {
				t.Fatalf("byte %d bit %d flipped: the code still works", i, bit)
			}
		}
	}
	for _, n := range []int{0, -1, 101} {
		if _, _, err := NewRecoveryCodes(n); err == nil {
			t.Errorf("NewRecoveryCodes(%d): no error", n)
		}
	}
}

func FuzzUseRecoveryCode(f *testing.F) {
	codes, enc, err := NewRecoveryCodes(3)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(codes[1])
	f.Add("0000-0000-0000-0000")
	f.Fuzz(func(t *testing.T, code string) {
		rest, err := UseRecoveryCode(enc, code)
		if err != nil {
			return
		}
		if n, _ := RecoveryCodesLeft(rest); n != 2 {
			t.Fatalf("%d codes left after one use of 3", n)
		}
		c, _ := normaliseRecovery(code)
		if !slices.ContainsFunc(codes, func(k string) bool { return strings.ReplaceAll(k, "-", "") == c }) {
			t.Fatalf("accepted %q, which is none of the codes", code)
		}
	})
}
