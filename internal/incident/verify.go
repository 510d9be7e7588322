package incident

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
)

// ErrRejected is wrapped by every failure of Verify: the report is not
// what the signed ledger says.
var ErrRejected = errors.New("incident: report rejected")

// Verified summarises a report that Verify accepted.
type Verified struct {
	Entries   int   // entries listed
	Proven    int   // of them, proven included in the checkpoint
	Uncovered int   // appended after the checkpoint: no proof
	Size      int64 // the checkpoint's tree size
}

// Verify checks a report with only the ledger's public verifier key
// (note format, "<origin>+<hash>+<key>"): the checkpoint is signed by it;
// every listed entry decodes, names the report's actor or client, falls
// in its window, is listed once, and — unless it is past the checkpoint —
// carries an inclusion proof that holds; and the lists, the affected
// patients, categories, actions and deadlines are exactly what those
// entries give. It cannot tell whether entries were left out (see the
// package documentation).
func Verify(r *Report, vkey string) (Verified, error) {
	reject := func(format string, args ...any) (Verified, error) {
		return Verified{}, fmt.Errorf("%w: "+format, append([]any{ErrRejected}, args...)...)
	}
	if r.Format != FormatV1 {
		return reject("unknown format %q", r.Format)
	}
	q := Query{Actor: r.Actor, Client: r.Client, From: r.From, To: r.To}
	if err := q.Validate(); err != nil {
		return reject("%v", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return reject("verifier key: %v", err)
	}
	cp, err := ledger.OpenCheckpoint([]byte(r.Checkpoint), v.Name(), note.VerifierList(v))
	if err != nil {
		return reject("checkpoint: %v", err)
	}
	if cp.Size != r.CheckpointSize {
		return reject("the checkpoint commits to size %d, the report says %d", cp.Size, r.CheckpointSize)
	}
	listed := slices.Concat(r.Disclosures, r.Attempts, r.Other)
	slices.SortFunc(listed, func(a, b Access) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Index, b.Index))
	})
	rebuilt := make([]Access, len(listed))
	out := Verified{Entries: len(listed), Size: cp.Size}
	for i, a := range listed {
		if i > 0 && listed[i-1].Index == a.Index {
			return reject("entry %d is listed twice", a.Index)
		}
		b, err := accessOf(a.Index, []byte(a.Entry))
		if err != nil {
			return reject("entry %d: %v", a.Index, err)
		}
		if err := r.check(b); err != nil {
			return reject("entry %d does not belong in the report: %v", a.Index, err)
		}
		switch {
		case a.Index < 0:
			return reject("negative index %d", a.Index)
		case a.Index >= cp.Size && len(a.Proof) > 0:
			return reject("entry %d is past the checkpoint but has a proof", a.Index)
		case a.Index >= cp.Size:
			out.Uncovered++
		default:
			if err := ledger.VerifyInclusion(cp, a.Index, ledger.LeafHash([]byte(a.Entry)), tlog.RecordProof(a.Proof)); err != nil {
				return reject("%v", err)
			}
			out.Proven++
		}
		b.Proof = a.Proof
		rebuilt[i] = b
	}
	want := &Report{
		Format: r.Format, Actor: r.Actor, Client: r.Client, From: r.From, To: r.To, Generated: r.Generated,
		Checkpoint: r.Checkpoint, CheckpointSize: r.CheckpointSize,
	}
	want.fill(rebuilt, r.Deadlines.Discovered)
	got, err1 := json.Marshal(r)
	exp, err2 := json.Marshal(want)
	if err := errors.Join(err1, err2); err != nil {
		return reject("%v", err)
	}
	if !bytes.Equal(got, exp) {
		return reject("its lists, patients, categories, actions or deadlines are not what its entries say")
	}
	return out, nil
}

// MaxReportSize bounds a report ReadReport accepts.
const MaxReportSize = 1 << 30

// ReadReport decodes a JSON report strictly (no unknown fields, no
// trailing data, at most MaxReportSize bytes). It does not verify it.
func ReadReport(rd io.Reader) (*Report, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxReportSize+1))
	if err != nil {
		return nil, fmt.Errorf("incident: read report: %w", err)
	}
	if len(b) > MaxReportSize {
		return nil, fmt.Errorf("incident: report larger than %d bytes", MaxReportSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("incident: decode report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("incident: decode report: trailing data")
	}
	return &r, nil
}
