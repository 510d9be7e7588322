package keys_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
)

// Vectors computed independently (Python hmac/hashlib, RFC 5869 HKDF) for
// the root key 00 01 .. 1f.
func TestPseudonymVectors(t *testing.T) {
	p := keys.NewPseudonyms(mustIndexKey(t, seqBytes(32, 0)))
	tests := []struct{ kind, value, want string }{
		{"client", "no-such-client", "hmac:7576840a6323af5127935abef1eb5e4c"},
		{"username", "nobody.matrix", "hmac:112d88d4dec9364190ef2e120cb610ff"},
		{"client", "", "hmac:255a1c1708ed66f230843a77e0590f60"},
	}
	for _, tt := range tests {
		if got := p.Sum(tt.kind, tt.value); got != tt.want {
			t.Errorf("Sum(%s, %q) = %s, want %s", tt.kind, tt.value, got, tt.want)
		}
	}
}

func TestPseudonymSeparation(t *testing.T) {
	root := mustIndexKey(t, seqBytes(32, 0))
	p := keys.NewPseudonyms(root)
	base := p.Sum("client", "smith")
	tests := []struct{ name, got string }{
		{"other value", p.Sum("client", "smyth")},
		{"other kind", p.Sum("username", "smith")},
		{"shifted separator", p.Sum("client\x00smith", "")},
		{"other root", keys.NewPseudonyms(mustIndexKey(t, seqBytes(32, 1))).Sum("client", "smith")},
		// The blind index of the same value under the same root.
		{"blind index", keys.PseudonymPrefix + keys.NewBlindIndex(root).Sum("client", "", "smith")},
	}
	for _, tt := range tests {
		if tt.got == base {
			t.Errorf("%s: same pseudonym as the base case", tt.name)
		}
	}
	if p.Sum("client", "smith") != base {
		t.Error("Sum is not deterministic")
	}
	if !strings.HasPrefix(base, keys.PseudonymPrefix) || len(base) != len(keys.PseudonymPrefix)+keys.BlindSize {
		t.Errorf("pseudonym %q: want %s and %d hex digits", base, keys.PseudonymPrefix, keys.BlindSize)
	}
}

func TestPseudonymsDoNotPrintKey(t *testing.T) {
	p := keys.NewPseudonyms(mustIndexKey(t, seqBytes(32, 0)))
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s", p, p, p, p)} {
		if strings.Contains(s, "000102") || strings.Contains(s, "[0 1 2") || !strings.Contains(s, "redacted") {
			t.Errorf("printed as %q", s)
		}
	}
}
