package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testWitnessName = "witness.test/w1"

func testCosigner(t testing.TB, label string, now time.Time) *Cosigner {
	t.Helper()
	c, err := NewCosigner(testWitnessName, testKey(label), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// witnessLog is a log under test: its entries and its signer.
type witnessLog struct {
	t      *testing.T
	m      *MemLog
	signer *Signer
}

func newWitnessLog(t *testing.T, n int, keyLabel string) *witnessLog {
	return &witnessLog{t: t, m: newMemLog(t, n), signer: testSigner(t, testOrigin, keyLabel)}
}

// checkpoint returns the log's signed checkpoint at size.
func (l *witnessLog) checkpoint(size int64) []byte {
	l.t.Helper()
	root, err := TreeHash(context.Background(), l.m, size)
	if err != nil {
		l.t.Fatal(err)
	}
	msg, err := SignCheckpoint(Checkpoint{Origin: l.signer.Name(), Size: size, Root: root}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return msg
}

func (l *witnessLog) proof(old, size int64) tlog.TreeProof {
	l.t.Helper()
	p, err := ProveConsistency(context.Background(), l.m, old, size)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

// newTestWitness returns a witness of testOrigin (key "log") over state,
// served by an httptest server.
func newTestWitness(t *testing.T, state WitnessState) (*Witness, *httptest.Server, *Cosigner) {
	t.Helper()
	cos := testCosigner(t, "witness", time.Unix(1700000000, 0))
	w, err := NewWitness(WitnessConfig{
		Cosigner: cos,
		Logs:     map[string]note.Verifier{testOrigin: testSigner(t, testOrigin, "log").Verifier()},
		State:    state,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/add-checkpoint", w)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return w, srv, cos
}

// post sends a raw add-checkpoint body and returns status, content type
// and body.
func post(t *testing.T, url string, body []byte) (int, string, string) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestCosignature(t *testing.T) {
	now := time.Unix(1712345678, 0)
	cos := testCosigner(t, "witness", now)
	v, err := NewCosignatureVerifier(cos.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	log := testSigner(t, testOrigin, "log")
	cp, err := SignCheckpoint(sampleCheckpoint(), log)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(log.Verifier()))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, cos)
	if err != nil {
		t.Fatal(err)
	}
	both := note.VerifierList(log.Verifier(), v)
	if got, err := note.Open(cosigned, both); err != nil || len(got.Sigs) != 2 {
		t.Fatalf("cosigned checkpoint: %v (%d sigs)", err, len(got.Sigs))
	}
	if ts, err := v.Timestamp(cosigned); err != nil || !ts.Equal(now) {
		t.Fatalf("timestamp %v, %v; want %v", ts, err, now)
	}
	if strings.Contains(fmt.Sprint(cos), "PRIVATE") || !strings.Contains(cos.String(), testWitnessName) {
		t.Errorf("String() = %q", cos)
	}
	if _, err := cos.Sign([]byte("not a checkpoint\n")); err == nil {
		t.Error("cosigner signed a non-checkpoint")
	}

	// Tamper: every bit of the witness's signature (timestamp included),
	// and the body.
	lines := strings.Split(strings.TrimSuffix(string(cosigned), "\n"), "\n")
	last := lines[len(lines)-1]
	i := strings.LastIndex(last, " ")
	raw := mustB64(t, last[i+1:])
	for bit := range 8 * len(raw) {
		bad := bytes.Clone(raw)
		bad[bit/8] ^= 1 << (bit % 8)
		msg := strings.Join(lines[:len(lines)-1], "\n") + "\n" + last[:i+1] + b64(bad) + "\n"
		if _, err := note.Open([]byte(msg), note.VerifierList(v)); err == nil {
			t.Fatalf("cosignature with bit %d flipped verified", bit)
		}
	}
	other := bytes.Replace(cosigned, []byte("\n1234\n"), []byte("\n1235\n"), 1)
	if _, err := note.Open(other, note.VerifierList(v)); err == nil {
		t.Fatal("cosignature verified over another body")
	}
	// A zero signature, or a signature of the wrong length, is refused.
	for _, sig := range [][]byte{make([]byte, cosignatureSize), raw[4:], raw[4 : len(raw)-1], append(raw[4:], 0)} {
		if v.Verify([]byte(n.Text), sig) != bytes.Equal(sig, raw[4:]) {
			t.Fatalf("Verify of a %d-byte signature: wrong answer", len(sig))
		}
	}
}

func TestCosignatureVerifierKeyRejects(t *testing.T) {
	good := testCosigner(t, "witness", time.Now()).VerifierKey()
	name, rest, _ := strings.Cut(good, "+")
	hash, key, _ := strings.Cut(rest, "+")
	raw := mustB64(t, key)
	ed := bytes.Clone(raw)
	ed[0] = 1
	for _, vkey := range []string{
		"", name, name + "+" + hash,
		"other.example/w+" + hash + "+" + key, // key hash commits to the name
		name + "+00000000+" + key,
		name + "+" + strings.ToUpper(hash) + "+" + key,
		name + "+" + hash + "+" + b64(ed), // plain Ed25519 note key type
		name + "+" + hash + "+" + b64(raw[:20]),
		name + "+" + hash + "+" + key + "=",
		"bad name+" + hash + "+" + key,
	} {
		if _, err := NewCosignatureVerifier(vkey); err == nil {
			t.Errorf("NewCosignatureVerifier(%q) accepted", vkey)
		}
	}
}

func TestWitnessAcceptsSequence(t *testing.T) {
	ctx := context.Background()
	l := newWitnessLog(t, 40, "log")
	_, srv, cos := newTestWitness(t, &MemWitnessState{})
	verifiers := note.VerifierList(l.signer.Verifier(), cos.Verifier())
	old := int64(0)
	for _, size := range []int64{0, 3, 3, 8, 9, 16, 40} {
		cosigned, err := AddCheckpoint(ctx, srv.Client(), srv.URL, old, l.proof(old, size), l.checkpoint(size))
		if err != nil {
			t.Fatalf("size %d from %d: %v", size, old, err)
		}
		n, err := note.Open(cosigned, verifiers)
		if err != nil || len(n.Sigs) != 2 {
			t.Fatalf("size %d: cosigned checkpoint does not verify with the log and witness keys: %v", size, err)
		}
		old = size
	}
	// A client that does not know the witness's size learns it from 409.
	_, err := AddCheckpoint(ctx, srv.Client(), srv.URL+"/", 0, nil, l.checkpoint(40))
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Size != 40 {
		t.Fatalf("stale old size: %v, want conflict at 40", err)
	}
}

func TestWitnessRejects(t *testing.T) {
	ctx := context.Background()
	l := newWitnessLog(t, 20, "log")
	fork := &witnessLog{t: t, m: new(MemLog), signer: l.signer} // same key, other entries
	for i := range 20 {
		e := sampleEntry(i)
		if i >= 5 {
			e.Detail = "forked"
		}
		if _, err := fork.m.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	stranger := &witnessLog{t: t, m: l.m, signer: testSigner(t, testOrigin, "another key")}
	unknown := &witnessLog{t: t, m: l.m, signer: testSigner(t, "other.test/log", "log")}

	state := &MemWitnessState{}
	_, srv, _ := newTestWitness(t, state)
	if _, err := AddCheckpoint(ctx, srv.Client(), srv.URL, 0, nil, l.checkpoint(8)); err != nil {
		t.Fatal(err)
	}
	_, before, _ := state.Latest(ctx, testOrigin)

	garbled := l.checkpoint(12)
	garbled[len(garbled)-10] ^= 1
	lenient := l.checkpoint(12) // the last base64 digit's padding bits flipped
	lenient[len(lenient)-3] ^= 1
	tests := []struct {
		name   string
		body   []byte
		status int
		want   func(error) bool
	}{
		{"signed by another key", encodeAddCheckpoint(8, l.proof(8, 12), stranger.checkpoint(12)), 403, isErr(errLogSignature)},
		{"bad signature bytes", encodeAddCheckpoint(8, l.proof(8, 12), garbled), 403, isErr(errLogSignature)},
		{"non-canonical signature", encodeAddCheckpoint(8, l.proof(8, 12), lenient), 400, nil},
		{"unknown origin", encodeAddCheckpoint(8, l.proof(8, 12), unknown.checkpoint(12)), 404, isErr(errUnknownLog)},
		{"stale old size", encodeAddCheckpoint(5, l.proof(5, 12), l.checkpoint(12)), 409, isConflict(8)},
		{"rollback", encodeAddCheckpoint(5, l.proof(5, 5), l.checkpoint(5)), 409, isConflict(8)},
		{"rollback from current", encodeAddCheckpoint(8, nil, l.checkpoint(5)), 400, nil},
		{"fork at the same size", encodeAddCheckpoint(8, nil, fork.checkpoint(8)), 409, isConflict(8)},
		{"fork to a larger tree", encodeAddCheckpoint(8, fork.proof(8, 12), fork.checkpoint(12)), 422, isErr(ErrProof)},
		{"proof for other sizes", encodeAddCheckpoint(8, l.proof(7, 12), l.checkpoint(12)), 422, isErr(ErrProof)},
		{"no proof", encodeAddCheckpoint(8, nil, l.checkpoint(12)), 422, isErr(ErrProof)},
		{"proof from 0", encodeAddCheckpoint(0, l.proof(8, 12), l.checkpoint(12)), 400, nil},
		{"malformed body", []byte("old 8\nnot base64\n\n" + string(l.checkpoint(12))), 400, nil},
		{"no checkpoint", []byte("old 8\n\n"), 400, nil},
		{"unsigned checkpoint", []byte("old 8\n\nward.test/log\n12\nAAAA\n"), 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, ctype, body := post(t, srv.URL, tc.body)
			if status != tc.status {
				t.Fatalf("status %d (%q), want %d", status, body, tc.status)
			}
			if status == 409 && (ctype != "text/x.tlog.size" || body != "8\n") {
				t.Fatalf("409 body %q type %q, want \"8\\n\" text/x.tlog.size", body, ctype)
			}
			if tc.want != nil {
				old, proof, msg, err := parseAddCheckpoint(tc.body)
				if err != nil {
					t.Fatal(err)
				}
				_, err = AddCheckpoint(ctx, srv.Client(), srv.URL, old, proof, msg)
				if !tc.want(err) {
					t.Fatalf("client error %v", err)
				}
			}
		})
	}

	// Every single-bit corruption of a good proof is rejected.
	good := l.proof(8, 20)
	for _, p := range append(flips(good), reshaped(good)...) {
		if status, _, body := post(t, srv.URL, encodeAddCheckpoint(8, p, l.checkpoint(20))); status != 422 {
			t.Fatalf("corrupted proof: status %d (%s), want 422", status, body)
		}
	}
	if size, after, _ := state.Latest(ctx, testOrigin); size != 8 || !bytes.Equal(after, before) {
		t.Fatalf("rejected requests changed the state to size %d", size)
	}
	if status, _, _ := post(t, srv.URL, encodeAddCheckpoint(8, good, l.checkpoint(20))); status != 200 {
		t.Fatalf("good proof after rejections: %d", status)
	}
	resp, err := http.Get(srv.URL + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

func isErr(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isConflict(size int64) func(error) bool {
	return func(err error) bool {
		var c *ConflictError
		return errors.As(err, &c) && c.Size == size
	}
}

// recordingState records every Put, to check the sequence of states.
type recordingState struct {
	MemWitnessState
	mu   sync.Mutex
	puts [][]byte
}

func (r *recordingState) Put(ctx context.Context, origin string, size int64, note []byte) error {
	r.mu.Lock()
	r.puts = append(r.puts, note)
	r.mu.Unlock()
	return r.MemWitnessState.Put(ctx, origin, size, note)
}

func TestWitnessConcurrent(t *testing.T) {
	ctx := context.Background()
	l := newWitnessLog(t, 64, "log")
	fork := &witnessLog{t: t, m: new(MemLog), signer: l.signer}
	for i := range 64 {
		e := sampleEntry(i)
		e.Detail = "fork"
		if _, err := fork.m.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	state := &recordingState{}
	_, srv, cos := newTestWitness(t, state)
	// Each submitter pushes its checkpoint, learning the witness's size
	// from 409 answers, until it is cosigned or overtaken. Half of them
	// submit a fork of the log.
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[bool]int{}
	for i := range 32 {
		wg.Go(func() {
			lg, size := l, int64(2*i+1)
			if i%2 == 1 {
				lg = fork
			}
			old := int64(0)
			for range 100 {
				if old > size {
					return
				}
				_, err := AddCheckpoint(ctx, srv.Client(), srv.URL, old, lg.proof(old, size), lg.checkpoint(size))
				var c *ConflictError
				switch {
				case err == nil:
					mu.Lock()
					accepted[lg == fork]++
					mu.Unlock()
					return
				case errors.As(err, &c) && c.Size != old:
					old = c.Size
				default:
					return // a fork or a conflict at the same size: rejected
				}
			}
			t.Errorf("submitter %d did not finish", i)
		})
	}
	wg.Wait()
	if accepted[false]+accepted[true] == 0 {
		t.Fatal("nothing was cosigned")
	}
	// The witness's successive states grow and are mutually consistent:
	// every one is a checkpoint of the same tree, all of l or all of fork.
	verifiers := note.VerifierList(l.signer.Verifier(), cos.Verifier())
	var prev Checkpoint
	var ref *witnessLog
	for k, msg := range state.puts {
		if _, err := note.Open(msg, verifiers); err != nil {
			t.Fatalf("state %d does not verify: %v", k, err)
		}
		c, err := checkpointOfNote(msg)
		if err != nil {
			t.Fatal(err)
		}
		if k > 0 && c.Size <= prev.Size {
			t.Fatalf("state went from size %d to %d", prev.Size, c.Size)
		}
		if ref == nil {
			ref = l
			if c.Root != root(t, l, c.Size) {
				ref = fork
			}
		}
		if c.Root != root(t, ref, c.Size) {
			t.Fatalf("state %d (size %d) is not in the same tree as the first", k, c.Size)
		}
		prev = c
	}
	if accepted[ref == l] != 0 {
		t.Fatalf("the witness cosigned both the log and its fork: %v", accepted)
	}
}

func root(t *testing.T, l *witnessLog, size int64) tlog.Hash {
	h, err := TreeHash(context.Background(), l.m, size)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestFileWitnessStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	l := newWitnessLog(t, 20, "log")
	st, err := NewFileWitnessState(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, srv, cos := newTestWitness(t, st)
	if _, err := AddCheckpoint(ctx, srv.Client(), srv.URL, 0, nil, l.checkpoint(5)); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	st2, err := NewFileWitnessState(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, srv2, _ := newTestWitness(t, st2)
	if _, err := AddCheckpoint(ctx, srv2.Client(), srv2.URL, 0, nil, l.checkpoint(3)); !isConflict(5)(err) {
		t.Fatalf("after restart: %v, want conflict at 5", err)
	}
	if _, err := AddCheckpoint(ctx, srv2.Client(), srv2.URL, 5, l.proof(5, 9), l.checkpoint(9)); err != nil {
		t.Fatal(err)
	}
	size, msg, err := st2.Latest(ctx, testOrigin)
	if err != nil || size != 9 {
		t.Fatalf("Latest = %d, %v", size, err)
	}
	if _, err := note.Open(msg, note.VerifierList(l.signer.Verifier(), cos.Verifier())); err != nil {
		t.Fatalf("stored checkpoint: %v", err)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 || files[0].Name() != filepath.Base(st2.Path(testOrigin)) {
		t.Fatalf("state directory holds %v", files)
	}
	if size, msg, err := st2.Latest(ctx, "other.test/log"); size != 0 || msg != nil || err != nil {
		t.Fatalf("unknown log: %d %q %v", size, msg, err)
	}

	// A corrupt record is an error (500), never a fresh start.
	if err := os.WriteFile(st2.Path(testOrigin), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, _, body := post(t, srv2.URL, encodeAddCheckpoint(0, nil, l.checkpoint(3))); status != 500 || strings.Contains(body, "corrupt") {
		t.Fatalf("corrupt state: %d %q", status, body)
	}
	if err := st2.Put(ctx, testOrigin, 4, l.checkpoint(5)); err == nil {
		t.Fatal("Put accepted a record whose size differs")
	}
}

func TestParseAddCheckpoint(t *testing.T) {
	l := newWitnessLog(t, 9, "log")
	cp := string(l.checkpoint(9))
	p := l.proof(4, 9)
	good := encodeAddCheckpoint(4, p, []byte(cp))
	old, proof, msg, err := parseAddCheckpoint(good)
	if err != nil || old != 4 || len(proof) != len(p) || string(msg) != cp {
		t.Fatalf("parse = %d %d %v", old, len(proof), err)
	}
	h := b64(p[0][:])
	for _, body := range []string{
		"", "old 4", "old 4\n", "old 04\n\n" + cp, "old -1\n\n" + cp, "old +4\n\n" + cp, "old  4\n\n" + cp,
		"OLD 4\n\n" + cp, "old 4\n" + h + "\n" + cp, "old 4\n" + h[:len(h)-1] + "\n\n" + cp,
		"old 4\n" + strings.TrimSuffix(h, "=") + "\n\n" + cp, "old 4\n" + h + " \n\n" + cp,
		"old 4\n" + strings.Repeat(h+"\n", 64) + "\n" + cp, "old 4\n\n", "old 0\n" + h + "\n\n" + cp,
		"old 99999999999999999999\n\n" + cp,
	} {
		if _, _, _, err := parseAddCheckpoint([]byte(body)); err == nil {
			t.Errorf("parsed %q", body)
		}
	}
	if _, _, _, err := parseAddCheckpoint([]byte("old 4\n" + strings.Repeat(h+"\n", 63) + "\n" + cp)); err != nil {
		t.Errorf("63 proof lines: %v", err)
	}
}

func FuzzParseAddCheckpoint(f *testing.F) {
	f.Add([]byte("old 0\n\nward.test/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— x AAAA\n"))
	f.Add([]byte("old 3\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\nx\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		old, proof, msg, err := parseAddCheckpoint(body)
		if err != nil {
			return
		}
		if again := encodeAddCheckpoint(old, proof, msg); !bytes.Equal(again, body) {
			t.Fatalf("not canonical: %q re-encodes as %q", body, again)
		}
	})
}

func TestAddCheckpointClientRejectsBadAnswers(t *testing.T) {
	l := newWitnessLog(t, 3, "log")
	for _, tc := range []struct {
		status int
		ctype  string
		body   string
	}{
		{409, "text/plain", "5\n"},
		{409, "text/x.tlog.size", "five\n"},
		{409, "text/x.tlog.size", "5"},
		{200, "text/plain", ""},
		{200, "text/plain", "hello\n"},
		{200, "text/plain", "— witness.test/w1 not-base64\n"},
		{200, "text/plain", "— witness.test/w1 AAAAAAAA"},
		{500, "text/plain", "oops\n"},
		{200, "text/plain", strings.Repeat("— w AAAAAAAA\n", 2000)},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", tc.ctype)
			rw.WriteHeader(tc.status)
			_, _ = io.WriteString(rw, tc.body)
		}))
		_, err := AddCheckpoint(context.Background(), srv.Client(), srv.URL, 0, nil, l.checkpoint(3))
		srv.Close()
		var c *ConflictError
		if err == nil || errors.As(err, &c) {
			t.Errorf("%d %q %.40q: err = %v", tc.status, tc.ctype, tc.body, err)
		}
	}
}

func TestNewWitnessValidates(t *testing.T) {
	cos := testCosigner(t, "witness", time.Now())
	v := testSigner(t, testOrigin, "log").Verifier()
	for _, cfg := range []WitnessConfig{
		{Logs: map[string]note.Verifier{testOrigin: v}, State: &MemWitnessState{}},
		{Cosigner: cos, Logs: map[string]note.Verifier{testOrigin: v}},
		{Cosigner: cos, State: &MemWitnessState{}},
		{Cosigner: cos, Logs: map[string]note.Verifier{"bad origin": v}, State: &MemWitnessState{}},
		{Cosigner: cos, Logs: map[string]note.Verifier{testOrigin: nil}, State: &MemWitnessState{}},
	} {
		if _, err := NewWitness(cfg); err == nil {
			t.Errorf("NewWitness accepted %+v", cfg)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzCosignatureVerifierKey(f *testing.F) {
	f.Add(testCosigner(f, "witness", time.Now()).VerifierKey())
	f.Add("a+00000000+BA==")
	f.Fuzz(func(t *testing.T, vkey string) {
		v, err := NewCosignatureVerifier(vkey)
		if err != nil {
			return
		}
		again := fmt.Sprintf("%s+%08x+%s", v.Name(), v.KeyHash(), b64(append([]byte{cosignatureAlg}, v.pub...)))
		if again != vkey {
			t.Fatalf("%q accepted, canonical form is %q", vkey, again)
		}
	})
}
