package credential

import (
	"bytes"
	"regexp"
	"slices"
	"testing"
	"time"
)

// cheap are argon2id parameters for tests only: 64 KiB, one pass.
var cheap = Params{Memory: 64, Time: 1, Threads: 1}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=([0-9]+),t=([0-9]+),p=([0-9]+)\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)

func TestHashFormatAndDefaults(t *testing.T) {
	enc, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	m := phcRE.FindSubmatch(enc)
	if m == nil {
		t.Fatalf("hash %q is not $argon2id$v=19$m=..,t=..,p=..$salt$hash", enc)
	}
	if string(m[1]) != "19456" || string(m[2]) != "2" || string(m[3]) != "1" {
		t.Errorf("parameters m=%s,t=%s,p=%s; want OWASP's m=19456,t=2,p=1", m[1], m[2], m[3])
	}
	ok, rehash, err := CheckPassword(enc, "correct horse battery staple")
	if !ok || rehash || err != nil {
		t.Errorf("CheckPassword(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	ok, rehash, err = CheckPassword(enc, "correct horse battery stapl")
	if ok || rehash || err != nil {
		t.Errorf("CheckPassword(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
}

func TestHashRoundTrip(t *testing.T) {
	h := &Hasher{Params: cheap}
	for _, pw := range []string{
		"correct horse battery staple",
		"   spaces   around   ",
		"пароль-на-русском-языке",
		"パスワードはとても長いです",
		"emoji 🔐🔑 in the middle",
		"",
	} {
		a, err := h.Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := h.Hash(pw)
		if bytes.Equal(a, b) {
			t.Errorf("two hashes of one password are equal: the salt is not random")
		}
		for _, enc := range [][]byte{a, b} {
			if ok, rehash, err := h.Check(enc, pw); !ok || rehash || err != nil {
				t.Errorf("Check(own hash) = %v, %v, %v", ok, rehash, err)
			}
			if ok, _, _ := h.Check(enc, pw+"x"); ok {
				t.Errorf("Check accepted a longer password")
			}
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	old := &Hasher{Params: cheap}
	enc, err := old.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{
		{Memory: 128, Time: 1, Threads: 1},
		{Memory: 64, Time: 2, Threads: 1},
		{Memory: 64, Time: 1, Threads: 2},
	} {
		ok, rehash, err := (&Hasher{Params: p}).Check(enc, "correct horse battery staple")
		if !ok || !rehash || err != nil {
			t.Errorf("params changed to %+v: Check = %v, %v, %v; want true, true, nil", p, ok, rehash, err)
		}
	}
	// The package functions use the defaults, so a cheap hash needs rehashing.
	if ok, rehash, err := CheckPassword(enc, "correct horse battery staple"); !ok || !rehash || err != nil {
		t.Errorf("CheckPassword(cheap hash) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	// A hash with a shorter salt or key than Ward writes is upgraded too.
	short := encodeHash(cheap, make([]byte, 8), make([]byte, 16))
	if _, rehash, err := old.Check(short, "x"); !rehash || err != nil {
		t.Errorf("short salt and key: rehash = %v, err = %v; want true, nil", rehash, err)
	}
}

func TestMalformedHashes(t *testing.T) {
	h := &Hasher{Params: cheap}
	good := string(encodeHash(cheap, make([]byte, 16), make([]byte, 32)))
	if _, _, err := h.Check([]byte(good), "x"); err != nil {
		t.Fatalf("good hash %q: %v", good, err)
	}
	salt, key := "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, bad := range []string{
		"",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=9$" + salt + "$" + key,          // memory below 8 KiB per lane
		"$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key,     // 4 GiB
		"$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key,       // hours
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,        // padding
		"$argon2id$v=19$m=64,t=1,p=1$" + salt[:21] + "B$" + key,    // non-canonical trailing bits
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",    // extra field
		"$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key,                  // 3-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA",            // 3-byte key
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "\n",   // trailing newline
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "-$" + key[:42],    // URL alphabet
		"$argon2id$v=19$m=64, t=1,p=1$" + salt + "$" + key,         // space
		"$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key, // overflows uint32
	} {
		if ok, _, err := h.Check([]byte(bad), "x"); err == nil || ok {
			t.Errorf("Check(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
}

// TestTamperedHash flips every bit of a stored hash: the right password
// must then fail, by error or by mismatch.
func TestTamperedHash(t *testing.T) {
	h := &Hasher{Params: cheap}
	enc, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		for bit := range 8 {
			bad := slices.Clone(enc)
			bad[i] ^= 1 << bit
			if ok, _, err := h.Check(bad, "correct horse battery staple"); ok && err == nil {
				t.Fatalf("byte %d bit %d flipped: the right password still matches", i, bit)
			}
		}
	}
}

func TestHasherRejectsBadParams(t *testing.T) {
	for _, p := range []Params{
		{Memory: 64, Time: 0, Threads: 1},
		{Memory: 64, Time: 1, Threads: 0},
		{Memory: 4, Time: 1, Threads: 1},
		{Memory: 1 << 21, Time: 1, Threads: 1},
	} {
		if _, err := (&Hasher{Params: p}).Hash("x"); err == nil {
			t.Errorf("Hash with %+v: no error", p)
		}
	}
}

// TestDummyCheckTiming checks that answering an unknown user costs about
// what a wrong password costs. It times pairs of a real and a dummy check,
// alternating which goes first, and takes the median of the ratios; the two
// run the same code, so only noise separates them. The machine is shared,
// so a noisy measurement is taken again, up to three times; a dummy check
// that does less or more work fails all three.
func TestDummyCheckTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test skipped in -short mode")
	}
	h := &Hasher{Params: Params{Memory: 1024, Time: 8, Threads: 1}}
	enc, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	real := func() time.Duration {
		start := time.Now()
		h.Check(enc, "wrong password guess")
		return time.Since(start)
	}
	dummy := func() time.Duration {
		start := time.Now()
		h.DummyCheck("wrong password guess")
		return time.Since(start)
	}
	const pairs = 21
	var ratio float64
	for try := 1; try <= 3; try++ {
		var ratios []float64
		var dummies []time.Duration
		for i := range pairs {
			var r, d time.Duration
			if i%2 == 0 {
				r, d = real(), dummy()
			} else {
				d, r = dummy(), real()
			}
			ratios = append(ratios, float64(d)/float64(r))
			dummies = append(dummies, d)
		}
		slices.Sort(ratios)
		slices.Sort(dummies)
		ratio = ratios[pairs/2]
		t.Logf("try %d: median dummy check %v, median ratio dummy/real %.2f", try, dummies[pairs/2], ratio)
		// A dummy check that did no work would take microseconds.
		if dummies[pairs/2] < 500*time.Microsecond {
			t.Fatalf("dummy check took %v: it does not run argon2id", dummies[pairs/2])
		}
		if ratio >= 0.5 && ratio <= 2 {
			return
		}
	}
	t.Errorf("dummy check takes %.2f times a real check; want 0.5 to 2", ratio)
}

func FuzzDecodeHash(f *testing.F) {
	f.Add(encodeHash(cheap, make([]byte, 16), make([]byte, 32)))
	f.Add(encodeHash(DefaultParams(), bytes.Repeat([]byte{0xff}, 16), bytes.Repeat([]byte{0xa5}, 32)))
	f.Add([]byte("$argon2id$v=19$m=64,t=1,p=1$$"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, salt, key, err := decodeHash(in)
		if err != nil {
			return
		}
		// One hash, one encoding: what parses re-encodes to the same bytes.
		if out := encodeHash(p, salt, key); !bytes.Equal(out, in) {
			t.Fatalf("decodeHash(%q) re-encodes as %q", in, out)
		}
		if p.validate() != nil {
			t.Fatalf("decodeHash(%q) accepted out-of-range parameters %+v", in, p)
		}
	})
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPassword(b *testing.B) {
	enc, err := HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		CheckPassword(enc, "correct horse battery staple")
	}
}
