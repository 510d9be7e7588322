package esign_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/ledger"
)

var body = []byte(`{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","lastUpdated":"2026-05-01T10:00:00.000Z"},"status":"final","valueQuantity":{"value":7.10,"unit":"mmol/L"},"note":[{"text":"<b>&</b> été"}]}`)

func newKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
}

func statement(t testing.TB, content []byte, target string) esign.Statement {
	t.Helper()
	h, err := esign.ContentHash(content)
	if err != nil {
		t.Fatal(err)
	}
	return esign.Statement{
		Signer: "u7xk2", Name: "Dr Zoë O'Brien", Meaning: "1.2.840.10065.1.12.1.5",
		Time:   esign.FormatTime(time.Date(2026, 5, 1, 12, 0, 3, 123456000, time.FixedZone("CEST", 2*3600))),
		Target: target, SHA256: h, Methods: []string{"pwd", "otp"},
	}
}

func sign(t testing.TB, key ed25519.PrivateKey, st esign.Statement) ([]byte, esign.Statement) {
	t.Helper()
	env, st, err := esign.Sign(key, st)
	if err != nil {
		t.Fatal(err)
	}
	return env, st
}

func keysOf(ks ...ed25519.PrivateKey) esign.Keys {
	out := esign.Keys{}
	for _, k := range ks {
		out.Add(k.Public().(ed25519.PublicKey))
	}
	return out
}

func TestSignOpen(t *testing.T) {
	key := newKey(t, 1)
	env, st := sign(t, key, statement(t, body, "Observation/o1/_history/2"))
	got, err := esign.Open(env, keysOf(key))
	if err != nil {
		t.Fatal(err)
	}
	if got.Signer != st.Signer || got.Name != st.Name || got.SHA256 != st.SHA256 || got.KeyID != esign.KeyID(key.Public().(ed25519.PublicKey)) {
		t.Fatalf("opened %+v, signed %+v", got, st)
	}
	if err := got.Check("Observation/o1/_history/2", body); err != nil {
		t.Fatalf("the signed content does not check: %v", err)
	}
	// The same content written another way (key order, white space,
	// escapes) is the same content.
	same := []byte(`{ "status":"final","id":"o1","resourceType":"Observation","meta":{"lastUpdated":"2026-05-01T10:00:00.000Z","versionId":"2"},"valueQuantity":{"unit":"mmol/L","value":7.10},"note":[{"text":"\u003cb>&</b> \u00e9t\u00e9"}]}`)
	if err := got.Check("Observation/o1/_history/2", same); err != nil {
		t.Fatalf("a re-encoding of the content does not check: %v", err)
	}
	if m := got.Manifestation(); !strings.Contains(m, "Dr Zoë O'Brien") || !strings.Contains(m, "2026-05-01 12:00:03 UTC+02:00") || !strings.Contains(m, "Verification Signature") {
		t.Fatalf("manifestation %q lacks the name, time with zone or meaning", m)
	}
	// A key rotated out still verifies what it signed; an unknown key does not.
	newer := newKey(t, 2)
	if _, err := esign.Open(env, keysOf(newer, key)); err != nil {
		t.Fatalf("an old key in the set: %v", err)
	}
	if _, err := esign.Open(env, keysOf(newer)); !errors.Is(err, esign.ErrInvalid) {
		t.Fatalf("an unknown key: %v", err)
	}
}

// Every bit of the envelope matters: flipping any one fails Open.
func TestEnvelopeBitFlips(t *testing.T) {
	key := newKey(t, 1)
	env, _ := sign(t, key, statement(t, body, "Observation/o1/_history/2"))
	keys := keysOf(key)
	for i := range env {
		for b := range 8 {
			bad := bytes.Clone(env)
			bad[i] ^= 1 << b
			if st, err := esign.Open(bad, keys); err == nil {
				// A flip in JSON syntax that decodes to the same bytes
				// cannot happen: statement and sig are base64 strings,
				// and every other byte is structure or a fixed value.
				t.Fatalf("flipping bit %d of byte %d (%q) still opens: %+v", b, i, env[i], st)
			}
		}
	}
}

// Tampering with any signed field, re-encoded into the envelope without
// re-signing, fails; so does the signature moved to another statement.
func TestStatementTamper(t *testing.T) {
	key := newKey(t, 1)
	env, _ := sign(t, key, statement(t, body, "Observation/o1/_history/2"))
	keys := keysOf(key)
	var e esign.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*esign.Statement){
		"signature hash": func(s *esign.Statement) { s.SHA256 = strings.Repeat("0", 64) },
		"meaning":        func(s *esign.Statement) { s.Meaning = "1.2.840.10065.1.12.1.1" },
		"signer":         func(s *esign.Statement) { s.Signer = "u-other" },
		"printed name":   func(s *esign.Statement) { s.Name = "Dr Mallory" },
		"time":           func(s *esign.Statement) { s.Time = esign.FormatTime(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) },
		"target version": func(s *esign.Statement) { s.Target = "Observation/o1/_history/1" },
		"target id":      func(s *esign.Statement) { s.Target = "Observation/o2/_history/2" },
		"methods":        func(s *esign.Statement) { s.Methods = []string{"pwd"} },
	} {
		var st esign.Statement
		if err := json.Unmarshal(e.Statement, &st); err != nil {
			t.Fatal(err)
		}
		change(&st)
		forged := e
		forged.Statement, _ = json.Marshal(st)
		raw, _ := json.Marshal(forged)
		if _, err := esign.Open(raw, keys); !errors.Is(err, esign.ErrInvalid) {
			t.Errorf("%s changed: Open = %v, want ErrInvalid", name, err)
		}
	}
	// The signature flipped bit by bit.
	for i := range e.Signature {
		forged := e
		forged.Signature = bytes.Clone(e.Signature)
		forged.Signature[i] ^= 0x80
		raw, _ := json.Marshal(forged)
		if _, err := esign.Open(raw, keys); !errors.Is(err, esign.ErrInvalid) {
			t.Fatalf("signature byte %d flipped: %v", i, err)
		}
	}
}

// A valid signature copied onto another resource or version, or content
// changed after signing, fails Check (11.70).
func TestBinding(t *testing.T) {
	key := newKey(t, 1)
	env, _ := sign(t, key, statement(t, body, "Observation/o1/_history/2"))
	st, err := esign.Open(env, keysOf(key))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"Observation/o1/_history/1", "Observation/o1/_history/3", "Observation/o2/_history/2", "Condition/o1/_history/2"} {
		if err := st.Check(target, body); !errors.Is(err, esign.ErrInvalid) {
			t.Errorf("copied onto %s: %v", target, err)
		}
	}
	for i := range body {
		changed := bytes.Clone(body)
		changed[i] ^= 1
		if _, err := esign.Canonical(changed); err != nil {
			continue // no longer JSON: refused too
		}
		if err := st.Check("Observation/o1/_history/2", changed); !errors.Is(err, esign.ErrInvalid) {
			t.Fatalf("content byte %d changed (%q): %v", i, changed[i], err)
		}
	}
}

// What a Provenance shows must be what was signed: each shown field
// changed fails Verify.
func TestProvenanceTamper(t *testing.T) {
	key := newKey(t, 1)
	env, st := sign(t, key, statement(t, body, "Observation/o1/_history/2"))
	keys := keysOf(key)
	fresh := func() map[string]any {
		var m map[string]any
		b, _ := json.Marshal(esign.Provenance(st, env))
		_ = json.Unmarshal(b, &m)
		return m
	}
	shown, err := esign.Signatures(fresh())
	if err != nil || len(shown) != 1 {
		t.Fatal(shown, err)
	}
	if _, err := shown[0].Verify(keys); err != nil {
		t.Fatalf("an untouched Provenance: %v", err)
	}
	sig := func(p map[string]any) map[string]any { return p["signature"].([]any)[0].(map[string]any) }
	for name, change := range map[string]func(p map[string]any){
		"meaning code":    func(p map[string]any) { sig(p)["type"].([]any)[0].(map[string]any)["code"] = "1.2.840.10065.1.12.1.1" },
		"meaning display": func(p map[string]any) { sig(p)["type"].([]any)[0].(map[string]any)["display"] = "Author's Signature" },
		"signer": func(p map[string]any) {
			sig(p)["who"].(map[string]any)["identifier"].(map[string]any)["value"] = "u-other"
		},
		"printed name":   func(p map[string]any) { sig(p)["who"].(map[string]any)["display"] = "Dr Mallory" },
		"time":           func(p map[string]any) { sig(p)["when"] = "2026-05-01T10:00:03.123456Z" },
		"target version": func(p map[string]any) { p["target"] = []any{map[string]any{"reference": "Observation/o1/_history/1"}} },
		"data":           func(p map[string]any) { sig(p)["data"] = "e30=" },
	} {
		p := fresh()
		change(p)
		shown, err := esign.Signatures(p)
		if err != nil {
			continue
		}
		if _, err := shown[0].Verify(keys); !errors.Is(err, esign.ErrInvalid) {
			t.Errorf("%s changed: %v, want ErrInvalid", name, err)
		}
	}
}

// memLedger is an in-memory ledger: entries, their tree, a signed
// checkpoint.
type memLedger struct {
	entries [][]byte
	hashes  []tlog.Hash
	signer  *ledger.Signer
}

func newLedger(t *testing.T) *memLedger {
	s, err := ledger.NewSigner("ward.example/ledger", newKey(t, 9))
	if err != nil {
		t.Fatal(err)
	}
	return &memLedger{signer: s}
}

func (l *memLedger) add(t *testing.T, e ledger.Entry) int64 {
	enc, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(l.entries))
	hs, err := tlog.StoredHashes(n, enc, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = l.hashes[x]
		}
		return out, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	l.entries, l.hashes = append(l.entries, enc), append(l.hashes, hs...)
	return n
}

func (l *memLedger) reader() tlog.HashReaderFunc {
	return func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = l.hashes[x]
		}
		return out, nil
	}
}

func (l *memLedger) checkpoint(t *testing.T) []byte {
	n := int64(len(l.entries))
	root, err := tlog.TreeHash(n, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "ward.example/ledger", Size: n, Root: root}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func (l *memLedger) prove(t *testing.T, index int64) [][]byte {
	p, err := tlog.ProveRecord(int64(len(l.entries)), index, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = bytes.Clone(h[:])
	}
	return out
}

// record builds a signature record of two versions, the second signed,
// with its signing in an in-memory ledger.
func record(t *testing.T, key ed25519.PrivateKey) (*esign.Record, *memLedger) {
	l := newLedger(t)
	l.add(t, ledger.Entry{Time: time.Unix(1, 0), Actor: "u1", Action: "read", Outcome: "success"})
	env, st := sign(t, key, statement(t, body, "Observation/o1/_history/2"))
	sigEntry := ledger.Entry{Time: time.Unix(2, 0), Actor: st.Signer, Action: esign.ActionSign, ResourceType: "Observation", ResourceID: "o1", Version: "2",
		Outcome: "success", Detail: "provenance=Provenance/p1 meaning=" + st.Meaning + " sig=" + esign.SignatureHash(env)}
	idx := l.add(t, sigEntry)
	l.add(t, ledger.Entry{Time: time.Unix(3, 0), Actor: "u2", Action: "read", Outcome: "success"})
	s := esign.Of(st, "Provenance/p1", env)
	s.Ledger = &esign.Inclusion{Index: idx, Entry: l.entries[idx], Proof: l.prove(t, idx)}
	v1 := bytes.Replace(body, []byte(`"versionId":"2"`), []byte(`"versionId":"1"`), 1)
	r := &esign.Record{Format: esign.RecordFormat, Resource: "Observation/o1", Checkpoint: string(l.checkpoint(t)), Versions: []esign.Version{
		{Version: 1, LastUpdated: "2026-05-01T09:00:00Z", Resource: v1, Signatures: []esign.Signature{}},
		{Version: 2, LastUpdated: "2026-05-01T10:00:00Z", Resource: body, Signatures: []esign.Signature{s}},
	}}
	return r, l
}

func verify(t *testing.T, r *esign.Record, keys esign.Keys, l *memLedger, trusted []byte) []esign.Finding {
	t.Helper()
	// Through JSON, as a file is read.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := esign.ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := esign.VerifyRecord(parsed, keys, l.signer.Verifier(), trusted, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestVerifyRecord(t *testing.T) {
	key := newKey(t, 1)
	r, l := record(t, key)
	keys := keysOf(key)
	fs := verify(t, r, keys, l, nil)
	if len(fs) != 1 || !fs[0].OK || fs[0].Version != 2 {
		t.Fatalf("findings %+v", fs)
	}
	if fs := verify(t, r, keys, l, []byte(r.Checkpoint)); !fs[0].OK {
		t.Fatalf("with the trusted checkpoint: %+v", fs)
	}
	// A later checkpoint the record was not proved in is refused whole.
	l.add(t, ledger.Entry{Time: time.Unix(4, 0), Actor: "u3", Action: "read", Outcome: "success"})
	b, _ := json.Marshal(r)
	parsed, _ := esign.ParseRecord(b)
	if _, err := esign.VerifyRecord(parsed, keys, l.signer.Verifier(), l.checkpoint(t), nil); err == nil {
		t.Fatal("a record checked against another checkpoint than it was proved in")
	}

	tamper := map[string]func(r *esign.Record){
		"content": func(r *esign.Record) {
			r.Versions[1].Resource = bytes.Replace(body, []byte("final"), []byte("amended"), 1)
		},
		"signature moved to v1": func(r *esign.Record) {
			r.Versions[0].Signatures, r.Versions[1].Signatures = r.Versions[1].Signatures, nil
		},
		"other resource":  func(r *esign.Record) { r.Resource = "Observation/o2" },
		"shown name":      func(r *esign.Record) { r.Versions[1].Signatures[0].Name = "Dr Mallory" },
		"shown meaning":   func(r *esign.Record) { r.Versions[1].Signatures[0].Meaning.Code = "1.2.840.10065.1.12.1.1" },
		"shown time":      func(r *esign.Record) { r.Versions[1].Signatures[0].When = "2026-01-01T00:00:00.000000Z" },
		"shown signer":    func(r *esign.Record) { r.Versions[1].Signatures[0].Signer = "u-other" },
		"no ledger entry": func(r *esign.Record) { r.Versions[1].Signatures[0].Ledger = nil },
		"ledger entry of another signing": func(r *esign.Record) {
			r.Versions[1].Signatures[0].Ledger.Entry = bytes.Replace(r.Versions[1].Signatures[0].Ledger.Entry, []byte(`"version":"2"`), []byte(`"version":"1"`), 1)
		},
		"ledger index": func(r *esign.Record) { r.Versions[1].Signatures[0].Ledger.Index = 0 },
		"proof bit":    func(r *esign.Record) { r.Versions[1].Signatures[0].Ledger.Proof[0][3] ^= 4 },
		"no content":   func(r *esign.Record) { r.Versions[1].Resource = nil },
	}
	for name, change := range tamper {
		r, l := record(t, key)
		change(r)
		fs := verify(t, r, keys, l, nil)
		if len(fs) != 1 || fs[0].OK {
			t.Errorf("%s tampered: findings %+v, want a failure", name, fs)
		}
	}
	// A checkpoint signed by another key is refused whole.
	r, l = record(t, key)
	other := newLedger(t)
	other.signer, _ = ledger.NewSigner("ward.example/ledger", newKey(t, 10))
	b, _ = json.Marshal(r)
	parsed, _ = esign.ParseRecord(b)
	if _, err := esign.VerifyRecord(parsed, keys, other.signer.Verifier(), nil, nil); err == nil {
		t.Fatal("a checkpoint under another ledger key was accepted")
	}
	_ = l
}

func TestTrustFile(t *testing.T) {
	key, old := newKey(t, 1), newKey(t, 2)
	l := newLedger(t)
	tr := esign.Trust{Format: esign.TrustFormat, Ledger: l.signer.VerifierKey(),
		ESign: []string{esign.FormatKey(key.Public().(ed25519.PublicKey)), esign.FormatKey(old.Public().(ed25519.PublicKey))}}
	b, _ := json.Marshal(tr)
	keys, v, err := esign.ParseTrust(b)
	if err != nil || len(keys) != 2 || v.Name() != "ward.example/ledger" {
		t.Fatalf("ParseTrust: %v %v", keys, err)
	}
	for name, bad := range map[string]string{
		"duplicate key": `{"format":"ward-esign-keys-v1","esign":[],"esign":[],"ledger":""}`,
		"unknown field": strings.Replace(string(b), `"format"`, `"extra":1,"format"`, 1),
		"kid mismatch":  strings.Replace(string(b), "esign-", "esign-0", 1),
	} {
		if _, _, err := esign.ParseTrust([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMeanings(t *testing.T) {
	ms := esign.Meanings()
	if len(ms) != 18 {
		t.Fatalf("%d meanings, want R4's 18", len(ms))
	}
	for i, m := range ms {
		if m.Code != fmt.Sprintf("1.2.840.10065.1.12.1.%d", i+1) || m.Display == "" {
			t.Errorf("meaning %d: %+v", i, m)
		}
	}
}

func FuzzOpen(f *testing.F) {
	key := newKey(f, 1)
	env, _, err := esign.Sign(key, statement(f, body, "Observation/o1/_history/2"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add([]byte(`{"format":"ward-esign-v1"}`))
	keys := keysOf(key)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := esign.Open(b, keys)
		if err == nil && !bytes.Equal(b, env) {
			// Only the one signed envelope, or a re-encoding of its JSON,
			// opens; what opens must be that statement.
			want, _ := esign.Open(env, keys)
			if fmt.Sprint(st) != fmt.Sprint(want) {
				t.Fatalf("a forged envelope opened: %+v", st)
			}
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"format":"ward-signatures-v1","resource":"Observation/o1","versions":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := esign.ParseRecord(b)
		if err != nil {
			return
		}
		l := &memLedger{}
		s, _ := ledger.NewSigner("ward.example/ledger", ed25519.NewKeyFromSeed(make([]byte, 32)))
		l.signer = s
		_, _ = esign.VerifyRecord(r, esign.Keys{}, s.Verifier(), nil, nil)
	})
}

// BenchmarkSign is the signing of one statement (content hash and
// Ed25519); BenchmarkVerifyRecord the offline check of one signature
// (envelope, content hash, shown fields, ledger entry, inclusion proof).
func BenchmarkSign(b *testing.B) {
	key := newKey(b, 1)
	st := statement(b, body, "Observation/o1/_history/2")
	for b.Loop() {
		h, _ := esign.ContentHash(body)
		st.SHA256 = h
		if _, _, err := esign.Sign(key, st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRecord(b *testing.B) {
	t := &testing.T{}
	key := newKey(b, 1)
	r, l := record(t, key)
	keys := keysOf(key)
	for b.Loop() {
		fs, err := esign.VerifyRecord(r, keys, l.signer.Verifier(), nil, nil)
		if err != nil || !fs[0].OK {
			b.Fatal(err, fs)
		}
	}
}

// TestVerifyRecordAcrossLedgerKeyRotation: with the ledger's key chain
// from the trust file (ward esign key after ward keys rotate --kind
// ledger), a record proved before the rotation verifies under the old
// key and one proved after it under the new key; the old key alone does
// not verify the new checkpoint, nor does the chain accept a checkpoint
// past the transition signed by the old key, and a trust file whose
// transition was not signed by the old key is refused.
func TestVerifyRecordAcrossLedgerKeyRotation(t *testing.T) {
	key := newKey(t, 1)
	r, l := record(t, key)
	keys := keysOf(key)
	old := l.signer
	next, err := ledger.NewSigner(old.Name(), newKey(t, 10))
	if err != nil {
		t.Fatal(err)
	}
	idx := l.add(t, ledger.Entry{Time: time.Unix(5, 0), Actor: "local:ops", Action: ledger.TransitionAction, Outcome: "success", Detail: next.VerifierKey()})
	note, err := old.SignTransition(ledger.Transition{Origin: old.Name(), From: idx + 1, NextKey: next.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	trust := func(transitions ...[]byte) []byte {
		tr := esign.Trust{Format: esign.TrustFormat, Ledger: old.VerifierKey(), ESign: []string{esign.FormatKey(key.Public().(ed25519.PublicKey))}}
		for _, n := range transitions {
			tr.LedgerTransitions = append(tr.LedgerTransitions, string(n))
		}
		b, _ := json.Marshal(tr)
		return b
	}
	ks, chain, err := esign.ParseTrustChain(trust(note))
	if err != nil || len(ks) != 1 {
		t.Fatalf("the trust file with the ledger's transition: %v", err)
	}
	check := func(r *esign.Record, chain *ledger.KeyChain) error {
		b, _ := json.Marshal(r)
		parsed, err := esign.ParseRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := esign.VerifyRecordChain(parsed, keys, chain, nil, nil)
		if err == nil && (len(fs) != 1 || !fs[0].OK) {
			err = fmt.Errorf("findings %+v", fs)
		}
		return err
	}
	if err := check(r, chain); err != nil {
		t.Errorf("a record proved before the rotation: %v", err)
	}
	// Proved again after the rotation, in a checkpoint of the new key.
	l.add(t, ledger.Entry{Time: time.Unix(6, 0), Actor: "u4", Action: "read", Outcome: "success"})
	sig := &r.Versions[1].Signatures[0]
	l.signer = next
	r.Checkpoint = string(l.checkpoint(t))
	sig.Ledger.Proof = l.prove(t, sig.Ledger.Index)
	if err := check(r, chain); err != nil {
		t.Errorf("a record proved after the rotation: %v", err)
	}
	oldOnly, err := ledger.NewKeyChain(old.Verifier(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(r, oldOnly); err == nil {
		t.Error("the old key alone verifies the new key's checkpoint")
	}
	l.signer = old
	r.Checkpoint = string(l.checkpoint(t))
	if err := check(r, chain); err == nil {
		t.Error("a checkpoint past the transition signed by the old key verifies")
	}
	forged, err := next.SignTransition(ledger.Transition{Origin: old.Name(), From: idx + 1, NextKey: newSignerKey(t, old.Name())})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := esign.ParseTrustChain(trust(forged)); err == nil {
		t.Error("a trust file whose transition the old key did not sign")
	}
}

// newSignerKey returns the verifier key of a fresh ledger key.
func newSignerKey(t *testing.T, origin string) string {
	s, err := ledger.NewSigner(origin, newKey(t, 11))
	if err != nil {
		t.Fatal(err)
	}
	return s.VerifierKey()
}
