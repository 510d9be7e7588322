package keys_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
)

// sealFile seals plain as file n of job and returns the sealed bytes.
func sealFile(t *testing.T, fk *keys.FileKey, n int, plain []byte, writes int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := fk.Writer(&out, n)
	step := max(1, len(plain)/max(1, writes))
	for rest := plain; len(rest) > 0; {
		c := min(step, len(rest))
		if _, err := w.Write(rest[:c]); err != nil {
			t.Fatal(err)
		}
		rest = rest[c:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func openFile(fk *keys.FileKey, n int, sealed []byte) ([]byte, error) {
	return io.ReadAll(fk.Reader(bytes.NewReader(sealed), n))
}

// Export files: sealed in chunks under a per-job key wrapped by the KEK;
// every size round-trips, the ciphertext holds no plaintext, and every
// truncation, bit flip, chunk swap, move to another file or job, and
// trailing byte is refused with ErrDecrypt.
func TestFileKey(t *testing.T) {
	ctx := context.Background()
	f, _ := newLocal(t, nil)
	k := newKeyring(t, f, &keystest.MemKeyStore{}, keys.Config{})
	fk, wrapped, err := k.NewFileKey(ctx, "job1")
	if err != nil {
		t.Fatal(err)
	}
	if s := fk.String(); bytes.Contains([]byte(s), wrapped.Wrapped) || s != "keys.FileKey(job1, redacted)" {
		t.Errorf("String() = %q", s)
	}
	again, err := k.OpenFileKey(ctx, "job1", wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.OpenFileKey(ctx, "job2", wrapped); !errors.Is(err, keys.ErrDecrypt) {
		t.Errorf("the wrapped key of job1 opened as job2's: %v", err)
	}
	line := []byte(`{"resourceType":"Patient","name":[{"family":"Canaryquill"}]}` + "\n")
	sizes := []int{0, 1, keys.FileChunkSize - 1, keys.FileChunkSize, keys.FileChunkSize + 1, 3*keys.FileChunkSize + 17}
	for _, size := range sizes {
		plain := bytes.Repeat(line, size/len(line)+1)[:size]
		for _, writes := range []int{1, 7} {
			sealed := sealFile(t, fk, 3, plain, writes)
			got, err := openFile(again, 3, sealed)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("size %d: round trip: %v", size, err)
			}
			if size > 16 && bytes.Contains(sealed, []byte("Canaryquill")) {
				t.Fatalf("size %d: the sealed file holds plaintext", size)
			}
		}
	}

	plain := bytes.Repeat(line, 3*keys.FileChunkSize/len(line))
	sealed := sealFile(t, fk, 0, plain, 1)
	chunk := 12 + keys.FileChunkSize + 16
	refused := func(name string, data []byte, file int, key *keys.FileKey) {
		t.Helper()
		if _, err := openFile(key, file, data); !errors.Is(err, keys.ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	// Cut at every chunk boundary and inside chunks.
	for _, cut := range []int{0, 1, 1 + chunk, 1 + 2*chunk, 1 + chunk/2, len(sealed) - 1} {
		refused("truncated", sealed[:cut], 0, fk)
	}
	refused("trailing byte", append(bytes.Clone(sealed), 0), 0, fk)
	refused("another file number", sealed, 1, fk)
	other, _, err := k.NewFileKey(ctx, "job1")
	if err != nil {
		t.Fatal(err)
	}
	refused("another key", sealed, 0, other)
	swapped := bytes.Clone(sealed)
	copy(swapped[1:1+chunk], sealed[1+chunk:1+2*chunk])
	copy(swapped[1+chunk:1+2*chunk], sealed[1:1+chunk])
	refused("chunks swapped", swapped, 0, fk)
	for _, i := range []int{0, 1, 13, chunk, chunk + 1, len(sealed) - 1} {
		flipped := bytes.Clone(sealed)
		flipped[i] ^= 0x10
		refused("bit flipped", flipped, 0, fk)
	}
	// Nothing of a refused chunk is handed out.
	bad := bytes.Clone(sealed)
	bad[1+chunk+20] ^= 1
	got, err := openFile(fk, 0, bad)
	if !errors.Is(err, keys.ErrDecrypt) || len(got) != keys.FileChunkSize {
		t.Errorf("a file bad in its second chunk gave %d bytes, %v; want exactly the first chunk's", len(got), err)
	}
}
