package keys_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
)

// TestBackupStream: a sealed backup opens to what was written, with the
// key file that wrote it only, and any cut, flipped bit, or extra byte is
// refused (catalogue J1's "a truncated or tampered backup is refused").
func TestBackupStream(t *testing.T) {
	f, _ := newLocal(t, nil)
	plain := make([]byte, 2<<20+12345) // two full chunks and a part
	if _, err := rand.Read(plain); err != nil {
		t.Fatal(err)
	}
	var sealed bytes.Buffer
	w, id, err := f.NewBackupWriter(&sealed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed.Bytes(), plain[:64]) {
		t.Fatal("the sealed stream holds the plaintext")
	}
	open := func(f *keys.LocalFile, b []byte) ([]byte, error) {
		r, _, err := f.NewBackupReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	got, err := open(f, sealed.Bytes())
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	if _, gotID, err := f.NewBackupReader(bytes.NewReader(sealed.Bytes())); err != nil || !bytes.Equal(gotID, id) {
		t.Errorf("backup id %x, %v; want %x", gotID, err, id)
	}
	b := sealed.Bytes()
	for name, bad := range map[string][]byte{
		"cut after the header":      b[:36],
		"cut after the first chunk": b[:36+4+1<<20+16],
		"cut inside a chunk":        b[:len(b)/2],
		"cut before the final":      b[:len(b)-20],
		"a flipped bit":             flip(b, len(b)/3),
		"a flipped header bit":      flip(b, 10),
		"a byte after the end":      append(bytes.Clone(b), 0),
	} {
		if _, err := open(f, bad); !errors.Is(err, keys.ErrBackup) {
			t.Errorf("%s: %v, want ErrBackup", name, err)
		}
	}
	other, _ := newLocal(t, nil)
	if _, err := open(other, b); !errors.Is(err, keys.ErrBackup) {
		t.Errorf("another key file: %v, want ErrBackup", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}
