package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// This file implements both sides of C2SP tlog-witness (add-checkpoint):
// a witness that verifies and cosigns checkpoints of the logs it knows,
// and the client a log uses to submit them.

// maxProofLines is the most consistency proof hashes a request may carry.
const maxProofLines = 63

// maxAddCheckpoint bounds an add-checkpoint request body: the old size
// line, the proof lines and a checkpoint.
const maxAddCheckpoint = 64 + maxProofLines*64 + maxCheckpoint

// maxCosignatures bounds a witness's response: its signature lines.
const maxCosignatures = 16 << 10

// Errors a witness reports, each with its tlog-witness status code. A
// consistency proof that does not verify wraps [ErrProof] (422).
var (
	errMalformedRequest = errors.New("ledger: malformed add-checkpoint request")       // 400
	errUnknownLog       = errors.New("ledger: unknown log origin")                     // 404
	errLogSignature     = errors.New("ledger: checkpoint not signed by a trusted key") // 403
)

// ConflictError is the witness's answer (409 Conflict) when the old size
// of a request is not the size of the latest checkpoint it cosigned for
// the log, or when a checkpoint of that same size has a different root
// hash (a fork). Size is the witness's latest cosigned size: a client
// retries with a consistency proof from it.
type ConflictError struct {
	Size int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("ledger: witness has cosigned the log up to size %d", e.Size)
}

// WitnessConfig configures a [Witness].
type WitnessConfig struct {
	// Cosigner is the witness's own key and name.
	Cosigner *Cosigner
	// Logs maps each known log's origin to its checkpoint verifier key.
	Logs map[string]note.Verifier
	// State persists the latest cosigned checkpoint per log.
	State WitnessState
	// OnServerError, if set, is told of failures that make the witness
	// answer 500 (state unreadable or not written). It must not block.
	OnServerError func(error)
}

// Witness is a C2SP tlog-witness: for each log it knows, it cosigns a
// checkpoint only if it is signed by the log's key and provably extends
// the latest checkpoint it cosigned before (RFC 6962 consistency), and
// it records that checkpoint durably before answering. So it never
// cosigns a smaller tree than one it cosigned, nor two inconsistent
// trees of one log, also across restarts as long as its State survives.
// Checks and updates for one log are serialised, so concurrent requests
// cannot roll its view back. It is safe for concurrent use.
type Witness struct {
	cosigner *Cosigner
	logs     map[string]note.Verifier
	locks    map[string]*sync.Mutex
	state    WitnessState
	onErr    func(error)
}

// NewWitness validates cfg and returns the witness.
func NewWitness(cfg WitnessConfig) (*Witness, error) {
	if cfg.Cosigner == nil || cfg.State == nil {
		return nil, errors.New("ledger: witness needs a cosigner and a state")
	}
	if len(cfg.Logs) == 0 {
		return nil, errors.New("ledger: witness needs at least one log")
	}
	w := &Witness{
		cosigner: cfg.Cosigner, state: cfg.State, onErr: cfg.OnServerError,
		logs: make(map[string]note.Verifier, len(cfg.Logs)), locks: make(map[string]*sync.Mutex, len(cfg.Logs)),
	}
	for origin, v := range cfg.Logs {
		if !validOrigin(origin) || v == nil {
			return nil, fmt.Errorf("ledger: witness log %q: bad origin or no verifier", origin)
		}
		w.logs[origin] = v
		w.locks[origin] = new(sync.Mutex)
	}
	if w.onErr == nil {
		w.onErr = func(error) {}
	}
	return w, nil
}

// Add verifies the signed checkpoint msg against the log's key and its
// consistency proof from oldSize, the size of the latest checkpoint the
// witness cosigned for the log, and returns the witness's cosignature
// line ("— <name> <base64>\n"). The new checkpoint is stored before Add
// returns. Errors: [*ConflictError] when oldSize is stale or the roots of
// equal sizes differ; [ErrProof] for a proof that does not verify; other
// errors for an unknown log, a bad signature or a malformed request.
func (w *Witness) Add(ctx context.Context, oldSize int64, proof tlog.TreeProof, msg []byte) ([]byte, error) {
	return w.AddFollowing(ctx, oldSize, proof, msg, nil)
}

// maxTransitions bounds the key transitions a request may carry.
const maxTransitions = 64

// AddFollowing is [Witness.Add] for a log whose key rotated: transitions
// are the log's key transition notes, which the witness follows from the
// key it was configured with ([NewKeyChain]); the checkpoint must be
// signed by the key the chain puts in force at its size. A transition
// not signed by the key before it, or altered, makes the request fail
// as a bad log signature (403), so a checkpoint signed by any other key
// is never cosigned.
func (w *Witness) AddFollowing(ctx context.Context, oldSize int64, proof tlog.TreeProof, msg []byte, transitions [][]byte) ([]byte, error) {
	if len(msg) > maxCheckpoint {
		return nil, fmt.Errorf("%w: checkpoint too large", errMalformedRequest)
	}
	if len(transitions) > maxTransitions {
		return nil, fmt.Errorf("%w: too many key transitions", errMalformedRequest)
	}
	origin, _, ok := strings.Cut(string(msg), "\n")
	if !ok {
		return nil, fmt.Errorf("%w: no origin line", errMalformedRequest)
	}
	first, ok := w.logs[origin]
	if !ok {
		return nil, errUnknownLog
	}
	chain, err := NewKeyChain(first, transitions)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errLogSignature, err)
	}
	// The key in force at the checkpoint's size, read before the
	// signature is checked; the note is then verified under it alone.
	v := chain.Current()
	if text, _, ok := strings.Cut(string(msg), "\n\n"); ok {
		if c, _, err := parseCheckpoint([]byte(text + "\n")); err == nil {
			v = chain.At(c.Size)
		}
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, errLogSignature
		}
		return nil, fmt.Errorf("%w: %w", errMalformedRequest, err)
	}
	for _, sig := range n.Sigs {
		// note decodes base64 leniently; the stored record must have
		// one spelling, as OpenCheckpoint requires.
		if _, err := base64.StdEncoding.Strict().DecodeString(sig.Base64); err != nil {
			return nil, fmt.Errorf("%w: signature is not canonical base64", errMalformedRequest)
		}
	}
	c, _, err := parseCheckpoint([]byte(n.Text))
	if err != nil || c.Origin != origin {
		return nil, fmt.Errorf("%w: bad checkpoint body", errMalformedRequest)
	}
	if oldSize < 0 || oldSize > c.Size {
		return nil, fmt.Errorf("%w: old size %d is above the checkpoint size %d", errMalformedRequest, oldSize, c.Size)
	}
	if len(proof) > maxProofLines {
		return nil, fmt.Errorf("%w: proof too long", errMalformedRequest)
	}

	mu := w.locks[origin]
	mu.Lock()
	defer mu.Unlock()
	size, stored, err := w.state.Latest(ctx, origin)
	if err != nil {
		return nil, err
	}
	if oldSize != size {
		return nil, &ConflictError{Size: size}
	}
	older := Checkpoint{Origin: origin, Size: 0, Root: emptyRoot()}
	if stored != nil {
		if older, err = checkpointOfNote(stored); err != nil {
			return nil, fmt.Errorf("ledger: witness state for %q: %w", origin, err)
		}
	}
	switch {
	case c.Size == 0 && (c.Root != emptyRoot() || len(proof) != 0):
		return nil, fmt.Errorf("%w: the empty tree has one root and no proof", ErrProof)
	case c.Size == older.Size && c.Root != older.Root:
		return nil, &ConflictError{Size: size}
	}
	if err := VerifyConsistency(older, c, proof); err != nil {
		return nil, err
	}
	sig, err := w.cosigner.Sign([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	line := fmt.Appendf(nil, "— %s %s\n", w.cosigner.Name(),
		base64.StdEncoding.EncodeToString(append(be32(w.cosigner.KeyHash()), sig...)))
	if c.Size > size || stored == nil {
		record := append(bytes.Clone(msg), line...)
		if err := w.state.Put(ctx, origin, c.Size, record); err != nil {
			return nil, err
		}
	}
	return line, nil
}

func be32(x uint32) []byte { return []byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)} } // #nosec G115 -- the intended truncation to bytes of a big-endian encoding

// ServeHTTP serves tlog-witness add-checkpoint; mount it at
// "<submission prefix>/add-checkpoint". Status codes follow the spec: 200
// with the cosignature line, 400 malformed, 403 not signed by the log's
// key, 404 unknown log, 409 with the witness's size (text/x.tlog.size),
// 422 bad consistency proof, 500 when the state fails.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxAddCheckpoint))
	if err != nil {
		http.Error(rw, "request body too large or unreadable", http.StatusBadRequest)
		return
	}
	oldSize, proof, msg, err := parseAddCheckpoint(body)
	var transitions [][]byte
	if err == nil {
		transitions, err = parseTransitionHeader(r.Header.Values(TransitionHeader))
	}
	var line []byte
	if err == nil {
		line, err = w.AddFollowing(r.Context(), oldSize, proof, msg, transitions)
	}
	var conflict *ConflictError
	switch {
	case err == nil:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rw.Write(line)
	case errors.As(err, &conflict):
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		_, _ = fmt.Fprintf(rw, "%d\n", conflict.Size)
	default:
		status := witnessStatus(err)
		if status == http.StatusInternalServerError {
			w.onErr(err)
			http.Error(rw, "internal error", status)
			return
		}
		http.Error(rw, err.Error(), status)
	}
}

// witnessStatus maps a witness error to its HTTP status; anything not
// recognised is a server error.
func witnessStatus(err error) int {
	switch {
	case errors.Is(err, errMalformedRequest):
		return http.StatusBadRequest
	case errors.Is(err, errLogSignature):
		return http.StatusForbidden
	case errors.Is(err, errUnknownLog):
		return http.StatusNotFound
	case errors.Is(err, ErrProof):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// encodeAddCheckpoint returns an add-checkpoint request body.
func encodeAddCheckpoint(oldSize int64, proof tlog.TreeProof, msg []byte) []byte {
	b := fmt.Appendf(nil, "old %d\n", oldSize)
	for _, h := range proof {
		b = base64.StdEncoding.AppendEncode(b, h[:])
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, msg...)
}

// parseAddCheckpoint parses an add-checkpoint request body strictly: the
// old size in canonical decimal, at most 63 proof lines of canonical
// base64 32-byte hashes, an empty line, and a non-empty checkpoint.
func parseAddCheckpoint(body []byte) (int64, tlog.TreeProof, []byte, error) {
	fail := func(what string) (int64, tlog.TreeProof, []byte, error) {
		return 0, nil, nil, fmt.Errorf("%w: %s", errMalformedRequest, what)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	sizeText, found := strings.CutPrefix(string(line), "old ")
	if !ok || !found {
		return fail("no old size line")
	}
	oldSize, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || oldSize < 0 || strconv.FormatInt(oldSize, 10) != sizeText {
		return fail("bad old size")
	}
	proof := tlog.TreeProof{}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return fail("no empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(proof) == maxProofLines {
			return fail("more than 63 proof lines")
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(raw) != tlog.HashSize {
			return fail("bad proof hash")
		}
		proof = append(proof, tlog.Hash(raw))
	}
	if len(rest) == 0 {
		return fail("no checkpoint")
	}
	if oldSize == 0 && len(proof) != 0 {
		return fail("a proof from size 0 must be empty")
	}
	return oldSize, proof, rest, nil
}

// AddCheckpoint submits the signed checkpoint msg to the witness at
// witnessURL (its submission prefix; "/add-checkpoint" is appended) with
// a consistency proof from oldSize, and returns msg with the witness's
// cosignature lines appended. The lines are checked for form, not
// verified: verify them with note.Open and the witness's
// [CosignatureVerifier]. On 409 it returns a [*ConflictError] carrying the
// witness's size, so the caller can retry with a proof from it.
//
// transitions are the log's key transition notes, sent for a Ward witness
// to follow the log's key from the one it knows ([Witness.AddFollowing]).
func AddCheckpoint(ctx context.Context, hc *http.Client, witnessURL string, oldSize int64, proof tlog.TreeProof, msg []byte, transitions ...[]byte) ([]byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimSuffix(witnessURL, "/") + "/add-checkpoint"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(encodeAddCheckpoint(oldSize, proof, msg)))
	if err != nil {
		return nil, fmt.Errorf("ledger: witness request: %w", err)
	}
	for _, t := range transitions {
		req.Header.Add(TransitionHeader, base64.StdEncoding.EncodeToString(t))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ledger: witness: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCosignatures+1))
	if err != nil {
		return nil, fmt.Errorf("ledger: witness response: %w", err)
	}
	if len(body) > maxCosignatures {
		return nil, errors.New("ledger: witness response too large")
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		text, ok := strings.CutSuffix(string(body), "\n")
		size, err := strconv.ParseInt(text, 10, 64)
		if resp.Header.Get("Content-Type") != "text/x.tlog.size" || !ok || err != nil || size < 0 {
			return nil, errors.New("ledger: witness answered 409 without a tree size")
		}
		return nil, &ConflictError{Size: size}
	case http.StatusUnprocessableEntity:
		return nil, fmt.Errorf("%w: the witness rejected the consistency proof from %d", ErrProof, oldSize)
	case http.StatusNotFound:
		return nil, fmt.Errorf("ledger: witness %s: %w", u, errUnknownLog)
	case http.StatusForbidden:
		return nil, fmt.Errorf("ledger: witness: %w", errLogSignature)
	default:
		return nil, fmt.Errorf("ledger: witness answered %s", resp.Status)
	}
	if err := checkSignatureLines(body); err != nil {
		return nil, err
	}
	return append(bytes.Clone(msg), body...), nil
}

// checkSignatureLines checks that b is one or more note signature lines.
func checkSignatureLines(b []byte) error {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return errors.New("ledger: witness response is not signature lines")
	}
	for _, line := range strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "— ")
		name, sig, ok2 := strings.Cut(rest, " ")
		raw, err := base64.StdEncoding.Strict().DecodeString(sig)
		if !ok || !ok2 || !validOrigin(name) || err != nil || len(raw) < 5 {
			return errors.New("ledger: witness response is not signature lines")
		}
	}
	return nil
}

// TransitionHeader carries one key transition note, in base64, per
// header line, in order, with an add-checkpoint request: a Ward
// extension that other witnesses ignore.
const TransitionHeader = "Ward-Key-Transition"

// parseTransitionHeader decodes the transition notes of a request.
func parseTransitionHeader(values []string) ([][]byte, error) {
	if len(values) > maxTransitions {
		return nil, fmt.Errorf("%w: too many key transitions", errMalformedRequest)
	}
	var out [][]byte
	for _, v := range values {
		b, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil || len(b) > maxCheckpoint {
			return nil, fmt.Errorf("%w: bad %s header", errMalformedRequest, TransitionHeader)
		}
		out = append(out, b)
	}
	return out, nil
}
