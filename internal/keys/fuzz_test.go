package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOpen feeds arbitrary sealed input and AAD to Open: it must never
// panic, and it must accept only what Seal produced for that AAD.
func FuzzOpen(f *testing.F) {
	// A fixed nonce source makes the seed identical in every fuzz worker.
	dk, err := newDataKey("p1", bytes.Repeat([]byte{1}, 32), bytes.NewReader(make([]byte, nonceSize)))
	if err != nil {
		f.Fatal(err)
	}
	good := AAD{Type: "Patient", ID: "p1", Version: 1, Compartment: "p1"}
	sealed, err := dk.Seal(good, []byte(`{"resourceType":"Patient"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, "Patient", "p1", int64(1))
	f.Add([]byte{}, "", "", int64(0))
	f.Add(make([]byte, SealOverhead), "Patient", "p1", int64(1))
	f.Fuzz(func(t *testing.T, in []byte, typ, id string, version int64) {
		aad := AAD{Type: typ, ID: id, Version: version, Compartment: "p1"}
		pt, err := dk.Open(aad, in)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) || pt != nil {
				t.Fatalf("Open failed with %v and %d bytes", err, len(pt))
			}
			return
		}
		if !bytes.Equal(in, sealed) || aad != good {
			t.Fatalf("Open accepted input that Seal did not produce for this AAD")
		}
	})
}

// FuzzAADEncoding checks that distinct AADs encode differently.
func FuzzAADEncoding(f *testing.F) {
	f.Add("Patient", "p1", int64(1), "p1", "Patient", "p1", int64(1), "p")
	f.Add("ab", "c", int64(0), "", "a", "bc", int64(0), "")
	f.Fuzz(func(t *testing.T, t1, i1 string, v1 int64, c1, t2, i2 string, v2 int64, c2 string) {
		a, b := AAD{t1, i1, v1, c1}, AAD{t2, i2, v2, c2}
		ea, eb := appendAAD(nil, a), appendAAD(nil, b)
		if (a == b) != bytes.Equal(ea, eb) {
			t.Fatalf("AADs %+v and %+v: equal=%v, encodings equal=%v", a, b, a == b, bytes.Equal(ea, eb))
		}
		if bytes.Equal(ea, wrapAAD(c1)) {
			t.Fatal("a seal AAD encodes like a wrap AAD")
		}
	})
}

// FuzzParseKeyFile feeds arbitrary bytes to the key file parser: no panic,
// and anything accepted is a valid key file that re-encodes to itself.
func FuzzParseKeyFile(f *testing.F) {
	dir := f.TempDir()
	for i, pass := range [][]byte{nil, []byte("pw")} {
		path := filepath.Join(dir, string(rune('a'+i)))
		if err := CreateLocalFile(path, LocalParams{Passphrase: pass, ArgonTime: 1, ArgonMemoryKiB: 16, ArgonThreads: 1}, nil); err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, pass != nil)
	}
	f.Add([]byte(`{"format":"ward-keyfile","version":1,"secrets":{},"secrets":{}}`), false)
	f.Add([]byte(`{"format":"ward-keyfile","version":2,"secrets":{"index":[{"id":"index-1","created":1,"state":"pending"}]}}`), false)
	f.Add([]byte(`{"format":"ward-keyfile","version":1,"kdf":{"alg":"argon2id","time":1,"memory_kib":16,"threads":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA=="},"nonce":"AAAAAAAAAAAAAAAA","sealed":"AAAAAAAAAAAAAAAAAAAAAA=="}`), true)
	f.Fuzz(func(t *testing.T, data []byte, sealed bool) {
		var pass []byte
		if sealed {
			pass = []byte("pw")
		}
		// Keep argon2 cheap: the parser bounds its parameters, but the
		// bounds are sized for real files, not for a fuzzer's throughput.
		if bytes.Contains(data, []byte("memory_kib")) && !bytes.Contains(data, []byte(`"memory_kib":16,`)) {
			return
		}
		s, _, _, _, err := parseKeyFile(data, pass, nil, time.Unix(1700000000, 0), zeroReader{})
		if err != nil {
			return
		}
		if err := s.validate(); err != nil {
			t.Fatalf("parser accepted an invalid file: %v", err)
		}
	})
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", `{"alg":"argon2id","time":1}`, true},
		{"nested ok", `{"a":{"x":1},"b":[{"x":1},{"x":2}]}`, true},
		{"duplicate key", `{"alg":"a","alg":"b"}`, false},
		{"duplicate nested key", `{"a":{"x":1,"x":2}}`, false},
		{"duplicate after nested", `{"a":{"b":1},"a":2}`, false},
		{"duplicate in array element", `{"b":[{"x":1,"x":1}]}`, false},
		{"unknown field", `{"alg":"a","extra":1}`, false},
		{"trailing data", `{"alg":"a"} {}`, false},
		{"too deep", `{"a":` + string(bytes.Repeat([]byte("["), 20)) + string(bytes.Repeat([]byte("]"), 20)) + `}`, false},
		{"not json", `{"alg":`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v struct {
				Alg  string `json:"alg"`
				Time int    `json:"time"`
				A    any    `json:"a"`
				B    any    `json:"b"`
			}
			if err := decodeStrict([]byte(tt.in), &v); (err == nil) != tt.ok {
				t.Fatalf("decodeStrict(%s) = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestPermissionErrorIs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if err := CreateLocalFile(path, LocalParams{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocalFile(path, nil); !errors.Is(err, errPermissions) {
		t.Fatalf("OpenLocalFile of a 0640 file: %v, want errPermissions", err)
	}
}

// zeroReader reads zeros: a deterministic source for upgrades in the fuzzer.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
