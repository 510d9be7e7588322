package compliance_test

import (
	"encoding/base64"
	"strings"
	"testing"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func decodeSig(t *testing.T, file []byte) []byte {
	t.Helper()
	for _, l := range strings.Split(string(file), "\n") {
		if s, ok := strings.CutPrefix(l, "signature "); ok {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("no signature line")
	return nil
}
