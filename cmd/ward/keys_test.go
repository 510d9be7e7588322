package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// kidOf returns the kid of a JWS's protected header.
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	hdr, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(hdr)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

type keysStatus struct {
	Keys []struct {
		Kind        string  `json:"kind"`
		ID          string  `json:"id"`
		AgeDays     float64 `json:"age_days"`
		Over        bool    `json:"over_max_age"`
		Generations int     `json:"generations"`
	} `json:"keys"`
}

func status(t *testing.T, dir string, flags ...string) keysStatus {
	t.Helper()
	code, stdout, stderr := ward(t, append([]string{"keys", "status", "--json", "--data", dir}, flags...)...)
	if code != 0 {
		t.Fatalf("keys status: exit %d: %s", code, stderr)
	}
	var st keysStatus
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("keys status --json: %v\n%s", err, stdout)
	}
	return st
}

// TestKeysRotateTokenWhileServing: ward keys rotate --kind token, run
// while a server serves, is picked up by the server without a restart:
// new tokens name the new key, a token issued before still works, the
// JWKS lists both keys, and ward keys status shows the new generation.
// --key-max-age makes a key due for rotation visible in status and in
// /readyz, which stays ready.
func TestKeysRotateTokenWhileServing(t *testing.T) {
	dir := t.TempDir()
	startServe(t, "--dev", "--data", dir, "--key-max-age", "backup=1ns")
	c := dial(t, dir)
	oldTok, oldKid := c.token, kidOf(t, c.token)
	st := status(t, dir)
	kinds := map[string]bool{}
	for _, k := range st.Keys {
		kinds[k.Kind] = true
		if k.ID == "" || k.Over || k.Generations != 1 {
			t.Errorf("fresh key file, status row %+v", k)
		}
	}
	for _, k := range []string{"kek", "index", "token", "ledger", "backup"} {
		if !kinds[k] {
			t.Errorf("keys status lacks kind %s", k)
		}
	}
	if st := status(t, dir, "--key-max-age", "backup=1ns"); !st.Keys[4].Over || st.Keys[4].Kind != "backup" {
		t.Errorf("a backup key over --key-max-age is not reported: %+v", st.Keys[4])
	}
	code, stdout, stderr := ward(t, "keys", "rotate", "--kind", "token", "--data", dir)
	if code != 0 || !strings.Contains(stdout, "token-2") {
		t.Fatalf("keys rotate --kind token: exit %d: %s %s", code, stdout, stderr)
	}
	// The server's key watcher picks the rotation up within seconds.
	deadline := time.Now().Add(20 * time.Second)
	var newTok string
	for {
		_, tok := requestToken(t, c.http, c.creds.TokenURL, c.creds.ClientID, c.creds.ClientSecret)
		if kidOf(t, tok) != oldKid {
			newTok = tok
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server still signs with the old token key")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		c.token = tok
		if code, _ := c.do("GET", "/Patient?_count=1", nil); code != http.StatusOK {
			t.Errorf("a token of the %s key: status %d", name, code)
		}
	}
	base := strings.TrimSuffix(c.creds.TokenURL, "/oauth2/token")
	resp, err := c.http.Get(base + "/oauth2/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if len(set.Keys) != 2 || set.Keys[0].Kid != kidOf(t, newTok) || set.Keys[1].Kid != oldKid {
		t.Errorf("JWKS after the rotation: %+v", set.Keys)
	}
	for _, k := range status(t, dir).Keys {
		if k.Kind == "token" && (k.ID != "token-2" || k.Generations != 2) {
			t.Errorf("status after the rotation: %+v", k)
		}
	}
	resp, err = c.http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Ready  bool `json:"ready"`
		Checks []struct {
			Name    string `json:"name"`
			Warning string `json:"warning"`
		} `json:"checks"`
	}
	json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	warned := false
	for _, ch := range ready.Checks {
		warned = warned || ch.Name == "key-age" && strings.Contains(ch.Warning, "backup")
	}
	if resp.StatusCode != http.StatusOK || !ready.Ready || !warned {
		t.Errorf("/readyz with a backup key over its maximum age: %d %+v; want ready with a key-age warning", resp.StatusCode, ready)
	}
}
