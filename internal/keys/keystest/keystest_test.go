package keystest_test

import (
	"testing"

	"github.com/wardhealth/ward/internal/keys/keystest"
)

func TestMemKeyStore(t *testing.T) {
	keystest.TestKeyStore(t, &keystest.MemKeyStore{})
}
