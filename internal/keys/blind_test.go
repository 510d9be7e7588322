package keys_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
)

func mustIndexKey(t testing.TB, b []byte) keys.IndexKey {
	t.Helper()
	k, err := keys.NewIndexKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seqBytes(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// Vectors computed independently (Python hmac/hashlib, RFC 5869 HKDF) for
// the root key 00 01 .. 1f.
func TestBlindIndexVectors(t *testing.T) {
	b := keys.NewBlindIndex(mustIndexKey(t, seqBytes(32, 0)))
	tests := []struct{ typ, param, value, want string }{
		{"Patient", "family", "smith", "7a8570855ed8f59351532a147968eedd"},
		{"Patient", "birthdate", "1970-01-01", "3e1e08e7911cb0c3d2fe64d6adc087d1"},
		{"Patient", "identifier", "http://hl7.org/fhir/sid/us-ssn|999-99-9999", "d9f361a781a47d7c15f5b4ede1005192"},
		{"Patient", "family", "", "e000722afc6afa53a35fed1f250471e7"},
	}
	for _, tt := range tests {
		if got := b.Sum(tt.typ, tt.param, tt.value); got != tt.want {
			t.Errorf("Sum(%s, %s, %q) = %s, want %s", tt.typ, tt.param, tt.value, got, tt.want)
		}
	}
}

func TestBlindIndexSeparation(t *testing.T) {
	b := keys.NewBlindIndex(mustIndexKey(t, seqBytes(32, 0)))
	other := keys.NewBlindIndex(mustIndexKey(t, seqBytes(32, 1)))
	base := b.Sum("Patient", "family", "smith")
	if len(base) != keys.BlindSize {
		t.Fatalf("len(Sum) = %d, want %d", len(base), keys.BlindSize)
	}
	tests := []struct {
		name string
		got  string
	}{
		{"other value", b.Sum("Patient", "family", "smyth")},
		{"other param", b.Sum("Patient", "given", "smith")},
		{"other type", b.Sum("Practitioner", "family", "smith")},
		{"other root", other.Sum("Patient", "family", "smith")},
		{"shifted separator", b.Sum("Patient|family", "", "smith")},
	}
	for _, tt := range tests {
		if tt.got == base {
			t.Errorf("%s: same blind index as the base case", tt.name)
		}
	}
	if again := b.Sum("Patient", "family", "smith"); again != base {
		t.Errorf("Sum is not deterministic: %s then %s", base, again)
	}
}

func TestBlindIndexConcurrent(t *testing.T) {
	b := keys.NewBlindIndex(mustIndexKey(t, seqBytes(32, 0)))
	want := map[string]string{}
	for i := range 20 {
		v := fmt.Sprint("value-", i)
		want[v] = b.Sum("Patient", fmt.Sprint("p", i%3), v)
	}
	fresh := keys.NewBlindIndex(mustIndexKey(t, seqBytes(32, 0)))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				v := fmt.Sprint("value-", i)
				if got := fresh.Sum("Patient", fmt.Sprint("p", i%3), v); got != want[v] {
					t.Errorf("concurrent Sum(%s) = %s, want %s", v, got, want[v])
				}
			}
		}()
	}
	wg.Wait()
}

func TestKeyTypesRedactAndCompare(t *testing.T) {
	raw := seqBytes(32, 0xa0)
	ik := mustIndexKey(t, raw)
	mk, err := keys.NewMACKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(ik), fmt.Sprintf("%v %+v %#v %s", ik, ik, ik, ik), fmt.Sprint(mk), fmt.Sprintf("%+v %#v", mk, mk)} {
		if !strings.Contains(s, "redacted") || strings.Contains(s, "a0") || strings.Contains(s, "160") {
			t.Errorf("key printed as %q", s)
		}
	}
	if !ik.Equal(mustIndexKey(t, raw)) || ik.Equal(mustIndexKey(t, seqBytes(32, 0))) {
		t.Error("IndexKey.Equal is wrong")
	}
	mk2, _ := keys.NewMACKey(seqBytes(32, 0))
	if !mk.Equal(mk) || mk.Equal(mk2) {
		t.Error("MACKey.Equal is wrong")
	}
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := keys.NewIndexKey(make([]byte, n)); err == nil {
			t.Errorf("NewIndexKey accepted %d bytes", n)
		}
		if _, err := keys.NewMACKey(make([]byte, n)); err == nil {
			t.Errorf("NewMACKey accepted %d bytes", n)
		}
	}
}

func TestMACKeyTamper(t *testing.T) {
	k, _ := keys.NewMACKey(seqBytes(32, 7))
	msg := []byte("Observation?patient=123&_count=20&_offset=40")
	mac := k.Sum(msg)
	if !k.Verify(msg, mac) {
		t.Fatal("Verify rejects a valid mac")
	}
	for i := range len(mac) * 8 {
		m := bytes.Clone(mac)
		m[i/8] ^= 1 << (i % 8)
		if k.Verify(msg, m) {
			t.Fatalf("Verify accepts a mac with bit %d flipped", i)
		}
	}
	for i := range len(msg) * 8 {
		m := bytes.Clone(msg)
		m[i/8] ^= 1 << (i % 8)
		if k.Verify(m, mac) {
			t.Fatalf("Verify accepts a message with bit %d flipped", i)
		}
	}
	other, _ := keys.NewMACKey(seqBytes(32, 8))
	for _, bad := range [][]byte{nil, mac[:16], append(bytes.Clone(mac), 0), other.Sum(msg)} {
		if k.Verify(msg, bad) {
			t.Errorf("Verify accepts %x", bad)
		}
	}
}

func BenchmarkBlindIndexSum(b *testing.B) {
	idx := keys.NewBlindIndex(mustIndexKey(b, seqBytes(32, 0)))
	b.ReportAllocs()
	for b.Loop() {
		idx.Sum("Patient", "family", "greenfelder")
	}
}

// BenchmarkBlindIndexSumNoCache is the baseline for BenchmarkBlindIndexSum:
// a fresh BlindIndex per value derives the parameter key and HMAC state.
func BenchmarkBlindIndexSumNoCache(b *testing.B) {
	root := mustIndexKey(b, seqBytes(32, 0))
	b.ReportAllocs()
	for b.Loop() {
		keys.NewBlindIndex(root).Sum("Patient", "family", "greenfelder")
	}
}
