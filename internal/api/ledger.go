package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/records"
)

// ledgerRoute serves the auditor's endpoints under /ledger. They need a
// token whose scopes allow reading AuditEvent without a compartment
// obligation: the auditor's grant. The ledger is every patient's, so a
// patient/ grant does not open it.
func (s *Server) ledgerRoute(w http.ResponseWriter, r *http.Request) {
	x := exchangeOf(r)
	x.typ = "Ledger"
	c, err := s.authenticate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if d := s.records.Policy().Decide(c.Subject, policy.Request{Action: policy.ActionRead, Type: "AuditEvent"}); !d.Allow || d.Restricted() {
		s.writeError(w, r, errForbidden)
		return
	}
	if r.Method != http.MethodGet {
		s.writeError(w, r, errMethod)
		return
	}
	if err := s.flushLedger(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	var allowed []string
	switch r.URL.Path {
	case "/ledger/entries":
		allowed = []string{"start", "end"}
	case "/ledger/proof/inclusion":
		allowed = []string{"index", "size"}
	case "/ledger/proof/consistency":
		allowed = []string{"old", "size"}
	}
	q, err := fixedParams(r, allowed...)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	x.query = paramNames(q)
	ctx := r.Context()
	switch r.URL.Path {
	case "/ledger/checkpoint":
		x.action = "ledger-checkpoint"
		note, err := s.view.Checkpoint(ctx)
		if err != nil {
			s.writeError(w, r, ledgerErr(err))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(note)
	case "/ledger/keys":
		if s.cfg.LedgerKeys == nil {
			s.writeError(w, r, errNotFound)
			return
		}
		x.action = "ledger-keys"
		doc, err := s.cfg.LedgerKeys()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	case "/ledger/entries":
		x.action = "ledger-entries"
		start, err1 := intParam(q.Get("start"))
		end, err2 := intParam(q.Get("end"))
		if err1 != nil || err2 != nil {
			s.writeError(w, r, badRequestf("start and end must be non-negative integers"))
			return
		}
		entries, err := s.view.Entries(ctx, start, end)
		if err != nil {
			s.writeError(w, r, ledgerErr(err))
			return
		}
		type item struct {
			Index int64           `json:"index"`
			Entry json.RawMessage `json:"entry"`
		}
		out := struct {
			Entries []item `json:"entries"`
		}{Entries: make([]item, len(entries))}
		for i, e := range entries {
			out.Entries[i] = item{e.Index, e.Entry}
		}
		writeLedgerJSON(w, out)
	case "/ledger/proof/inclusion":
		x.action = "ledger-proof"
		index, err1 := intParam(q.Get("index"))
		size, err2 := optionalInt(q.Get("size"))
		if err1 != nil || err2 != nil {
			s.writeError(w, r, badRequestf("index (and size, when given) must be non-negative integers"))
			return
		}
		leaf, proof, size, err := s.view.Inclusion(ctx, index, size)
		if err != nil {
			s.writeError(w, r, ledgerErr(err))
			return
		}
		writeLedgerJSON(w, map[string]any{"index": index, "size": size, "leaf_hash": b64(leaf), "proof": hashes(proof)})
	case "/ledger/proof/consistency":
		x.action = "ledger-proof"
		old, err1 := intParam(q.Get("old"))
		size, err2 := optionalInt(q.Get("size"))
		if err1 != nil || err2 != nil {
			s.writeError(w, r, badRequestf("old (and size, when given) must be non-negative integers"))
			return
		}
		proof, size, err := s.view.Consistency(ctx, old, size)
		if err != nil {
			s.writeError(w, r, ledgerErr(err))
			return
		}
		writeLedgerJSON(w, map[string]any{"old": old, "size": size, "proof": hashes(proof)})
	default:
		s.writeError(w, r, errNotFound)
	}
}

func ledgerErr(err error) error {
	switch {
	case errors.Is(err, audit.ErrNoCheckpoint):
		return badRequestf("the ledger has no checkpoint yet")
	case errors.Is(err, audit.ErrRange):
		return badRequestf("index or size out of range")
	}
	return err
}

func intParam(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errBadRequest
	}
	return n, nil
}

func optionalInt(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return intParam(s)
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

func hashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = b64(h)
	}
	return out
}

func writeLedgerJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// flushLedger waits until every entry acknowledged so far is in the
// store's ledger (a spooled audit.Log folds it), so that what an auditor
// reads includes every access that was answered before the request.
func (s *Server) flushLedger(ctx context.Context) error {
	f, ok := s.ledger.(interface{ Flush(context.Context) error })
	if !ok {
		return nil
	}
	if err := f.Flush(ctx); err != nil {
		return fmt.Errorf("%w: %w", records.ErrUnavailable, err)
	}
	return nil
}
