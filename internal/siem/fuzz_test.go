package siem

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wardhealth/ward/internal/secevent"
)

// FuzzSegment: whatever a segment file holds (a torn write, a damaged
// disk), reading it never panics, stops at the first record that is not
// whole and CRC-valid, and every record read decodes or is refused.
func FuzzSegment(f *testing.F) {
	good := encodeRecord(secevent.New(secevent.SignInFailed, t0).With(secevent.AttrReason, "wrong-password"))
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good[:11]...))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, '{', '}', ' ', ' '})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	path := filepath.Join(f.TempDir(), segName(1)) // one file per worker, rewritten each run
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		r := &recordReader{f: fh}
		for range 1000 {
			p, err := r.next()
			if err != nil {
				break
			}
			if r.off > int64(len(data)) {
				t.Fatalf("read past the end: %d > %d", r.off, len(data))
			}
			if e, err := decodePayload(p); err == nil && e.Kind != "" {
				_ = OCSF(e, "fuzz") // a decoded event always formats
				_ = CEF(e, "fuzz")
			}
		}
	})
}
