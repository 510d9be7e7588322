package incident

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteJSON writes the whole report, proofs included, as indented JSON:
// what Verify and `ward incident verify` check.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WritePatientsCSV writes the affected patients, one line each: patient
// id, first and last access (RFC 3339, UTC), the data categories and
// actions (separated by "; "), and the number of disclosures. Ids only:
// the operator joins them to contact details for the notices.
func (r *Report) WritePatientsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"patient", "first_access", "last_access", "categories", "actions", "accesses"})
	for _, p := range r.Patients {
		_ = cw.Write(cells(p.ID, stamp(p.First), stamp(p.Last), strings.Join(p.Categories, "; "),
			strings.Join(p.Actions, "; "), strconv.Itoa(p.Accesses)))
	}
	cw.Flush()
	return cw.Error()
}

// WriteAccessesCSV writes every listed entry, one line each, with the
// list it is in (disclosure, attempt or other) and whether the
// checkpoint covers it; proofs are in the JSON report only.
func (r *Report) WriteAccessesCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"kind", "index", "time", "action", "outcome", "resource_type", "resource_id", "version",
		"patients", "category", "actor", "client", "source", "proven"})
	for _, l := range []struct {
		kind string
		list []Access
	}{{"disclosure", r.Disclosures}, {"attempt", r.Attempts}, {"other", r.Other}} {
		for _, a := range l.list {
			_ = cw.Write(cells(l.kind, strconv.FormatInt(a.Index, 10), stamp(a.Time), a.Action, a.Outcome,
				a.ResourceType, a.ResourceID, a.Version, strings.Join(a.Patients, " "), a.Category,
				a.Actor, a.Client, a.Source, strconv.FormatBool(len(a.Proof) > 0)))
		}
	}
	cw.Flush()
	return cw.Error()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// cells guards values that a spreadsheet would run as a formula: one
// starting with =, +, -, @, tab or carriage return gets a leading
// apostrophe, unless it is a plain id or number (letters, digits, '-',
// '.' and ':' only), which no spreadsheet can turn into a call.
func cells(values ...string) []string {
	for i, v := range values {
		if v == "" || !strings.ContainsAny(v[:1], "=+-@\t\r") {
			continue
		}
		if strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:") != "" {
			values[i] = "'" + v
		}
	}
	return values
}
