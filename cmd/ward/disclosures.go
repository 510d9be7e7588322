package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

const disclosuresSummary = `Print the accounting of disclosures of one patient's data (HIPAA
164.528, GDPR Art. 15): every access that returned or changed the
patient's data, by anyone but the patient, oldest first, with its date,
recipient (the person, their role and record, and the app), purpose of use
and what was disclosed. It reads the audit ledger's patient index; refused
attempts are left out (the patient's $access-log shows them too). On
SQLite a running server folds its newest read entries into the ledger
within a second or so.`

// disclosure is one line of the accounting.
type disclosure struct {
	Date        time.Time `json:"date"`
	Recipient   string    `json:"recipient"`
	Role        string    `json:"role,omitempty"`
	Record      string    `json:"record,omitempty"` // the recipient's FHIR record, e.g. Practitioner/123
	Client      string    `json:"client"`
	Purpose     string    `json:"purpose"`
	Description string    `json:"description"`
	Entry       int64     `json:"entry"` // the ledger index, for `ward audit prove`
}

// disclosingActions are the ledger actions that hand a patient's data to
// the caller or change it.
var disclosingActions = map[string]bool{
	"read": true, "vread": true, "search": true, "history": true, "everything": true, "notify": true,
	"create": true, "update": true, "delete": true, "transaction": true, "batch": true,
}

func runDisclosures(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var st storage
	fs := newFlagSet("disclosures", disclosuresSummary)
	st.register(fs)
	patient := fs.String("patient", "", "the patient's id (required)")
	since := fs.String("since", "", "only disclosures on or after this date (YYYY-MM-DD) or instant (RFC 3339)")
	format := fs.String("format", "text", "output: text, csv or json")
	asJSON := fs.Bool("json", false, "same as --format json")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *asJSON {
		*format = "json"
	}
	if !fhir.ValidID(*patient) {
		return usagef("--patient must be a patient id")
	}
	if *format != "text" && *format != "csv" && *format != "json" {
		return usagef("--format must be text, csv or json")
	}
	var from time.Time
	if *since != "" {
		var err error
		if from, err = time.Parse("2006-01-02", *since); err != nil {
			if from, err = time.Parse(time.RFC3339Nano, *since); err != nil {
				return usagef("--since must be a date (YYYY-MM-DD) or an RFC 3339 instant")
			}
		}
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := disclosures(ctx, db, *patient, from)
	if err != nil {
		return err
	}
	return writeDisclosures(stdout, *format, list)
}

// disclosures reads the accounting of disclosures of patient since from.
func disclosures(ctx context.Context, db store.Store, patient string, from time.Time) ([]disclosure, error) {
	const page = 1000
	people := map[string]store.User{}
	var out []disclosure
	for offset := 0; ; offset += page {
		rows, err := db.LedgerEntriesByPatient(ctx, patient, from, time.Time{}, offset, page)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			e, err := ledger.DecodeEntry(row.Entry)
			if err != nil {
				return nil, fmt.Errorf("ledger entry %d: %w", row.Index, err)
			}
			if !disclosingActions[e.Action] || (e.Outcome != "success" && e.Outcome != "no-change") {
				continue
			}
			u, ok := people[e.Actor]
			if !ok && e.Actor != e.Client {
				u, err = db.User(ctx, e.Actor)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
				people[e.Actor] = u
			}
			if u.FHIRUser == "Patient/"+patient {
				continue // the patient's own access discloses nothing to anyone else
			}
			out = append(out, disclosure{
				Date: e.Time.UTC(), Recipient: e.Actor, Role: u.Role, Record: u.FHIRUser, Client: e.Client,
				Purpose: purposeOf(e), Description: describe(e, patient), Entry: row.Index,
			})
		}
		if len(rows) < page {
			return out, nil
		}
	}
}

func purposeOf(e ledger.Entry) string {
	if e.Purpose == "" {
		return "unstated"
	}
	return e.Purpose
}

// describe says what an entry disclosed: the interaction and the resource,
// the other patients an answer held, and the break-the-glass grant it
// went through. Ledger entries hold no free text, and neither does this.
func describe(e ledger.Entry, patient string) string {
	d := e.Action
	if e.ResourceType != "" {
		d += " " + e.ResourceType
		if e.ResourceID != "" {
			d += "/" + e.ResourceID
			if e.Version != "" {
				d += "/_history/" + e.Version
			}
		}
	}
	if n := len(e.Patients); n > 1 {
		d += " (an answer about " + strconv.Itoa(n) + " patients)"
	}
	if _, grants, ok := strings.Cut(e.Detail, "btg-grant="); ok {
		grants, _, _ = strings.Cut(grants, " ")
		d += ", break-the-glass grant " + grants
	}
	return d
}

func writeDisclosures(w io.Writer, format string, list []disclosure) error {
	switch format {
	case "json":
		if list == nil {
			list = []disclosure{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"date", "recipient", "role", "record", "client", "purpose", "description", "entry"})
		for _, d := range list {
			_ = cw.Write([]string{d.Date.Format(time.RFC3339), d.Recipient, d.Role, d.Record, d.Client, d.Purpose, d.Description, strconv.FormatInt(d.Entry, 10)})
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tRECIPIENT\tROLE\tCLIENT\tPURPOSE\tDESCRIPTION")
	for _, d := range list {
		who := d.Recipient
		if d.Record != "" {
			who += " (" + d.Record + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Date.Format(time.RFC3339), who, d.Role, d.Client, d.Purpose, d.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d disclosures\n", len(list))
	return err
}
