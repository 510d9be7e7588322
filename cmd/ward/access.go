package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/compliance"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

const accessSummary = `Periodic access review (HIPAA 164.308(a)(4)): who may use Ward, and a
reviewer's confirmation that they still should.

  review   every person and client: role, scopes, status, last use (from
           the ledger's actor index), second factors, break-the-glass
           grants (and how many wait for review), the last confirmation
           and when the next is due; OVERDUE when an active one was not
           confirmed within --period-days (never confirmed: counted from
           its creation). --format text, csv or json (--json).
  confirm  record that --reviewer (a Ward user id: the accountable
           person) confirmed the access of --user ID or --client ID. The
           confirmation is a ledger entry (action access-confirm) naming
           the reviewer, the operating-system account that ran the
           command, and the time; the compliance report flags every
           active person or client whose confirmation is overdue.`

// cliClient is the client id under which the command line records its
// ledger entries (recordAdmin); access confirmations are found under it.
const cliClient = "ward-cli"

func runAccess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "access", "review", "confirm")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("access "+sub, accessSummary)
	st.register(fs)
	period := fs.Int("period-days", 90, "review: days a confirmation lasts")
	format := fs.String("format", "text", "review: text, csv or json")
	asJSON := fs.Bool("json", false, "review: same as --format json")
	userID := fs.String("user", "", "confirm: the user id whose access is confirmed")
	clientID := fs.String("client", "", "confirm: or the client id whose access is confirmed")
	reviewer := fs.String("reviewer", "", "confirm: the reviewer's Ward user id (required)")
	asOf := fs.String("as-of", "", "review: judge due dates as of this instant or date (e.g. the next audit; default now)")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if *asJSON {
		*format = "json"
	}
	switch {
	case sub == "review" && *format != "text" && *format != "csv" && *format != "json":
		return usagef("--format must be text, csv or json")
	case sub == "review" && *period <= 0:
		return usagef("--period-days must be positive")
	case sub == "confirm" && (*userID == "") == (*clientID == ""):
		return usagef("confirm needs exactly one of --user and --client")
	case sub == "confirm" && *reviewer == "":
		return usagef("--reviewer is required: the Ward user id of the person who reviewed the access")
	}
	now := time.Now()
	if *asOf != "" {
		if now, err = parseInstant("--as-of", *asOf); err != nil {
			return err
		}
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "confirm" {
		return accessConfirm(ctx, db, stdout, *userID, *clientID, *reviewer)
	}
	subjects, err := reviewAccess(ctx, db, time.Duration(*period)*24*time.Hour, now)
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(subjects)
	case "csv":
		return writeReviewCSV(stdout, subjects)
	}
	return writeReviewText(stdout, subjects)
}

// reviewAccess reviews every person and client, with the MFA roles and
// custom roles the server last started with (its server-config entry).
func reviewAccess(ctx context.Context, db store.Store, period time.Duration, now time.Time) ([]compliance.ReviewSubject, error) {
	cfg := compliance.ReviewConfig{Period: period, ConfirmClient: cliClient}
	if sc, err := lastServerConfig(ctx, db); err != nil {
		return nil, err
	} else if sc != nil {
		for _, r := range strings.Split(sc.fields["mfa"], ",") {
			if r != "" {
				cfg.MFARoles = append(cfg.MFARoles, r)
			}
		}
	}
	return compliance.Review(ctx, db, cfg, now)
}

func accessConfirm(ctx context.Context, db store.Store, out io.Writer, userID, clientID, reviewer string) error {
	r, err := db.User(ctx, reviewer)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return usagef("--reviewer %q is not a Ward user id ('ward user list')", reviewer)
	case err != nil:
		return err
	case r.Disabled:
		return usagef("--reviewer %q is disabled", reviewer)
	case reviewer == userID:
		return usagef("a person cannot confirm their own access")
	}
	kind, id, name := compliance.KindPerson, userID, ""
	if userID != "" {
		u, err := db.User(ctx, userID)
		if errors.Is(err, store.ErrNotFound) {
			return usagef("--user %q is not a Ward user id ('ward user list')", userID)
		} else if err != nil {
			return err
		}
		name = u.Username + " (" + u.Role + ")"
	} else {
		kind, id = compliance.KindClient, clientID
		c, err := db.Client(ctx, clientID)
		if errors.Is(err, store.ErrNotFound) {
			return usagef("--client %q is not a client id ('ward client list')", clientID)
		} else if err != nil {
			return err
		}
		name = c.Name
	}
	e, err := compliance.ConfirmEntry(kind, id, reviewer, time.Now())
	if err != nil {
		return usagef("%v", err)
	}
	host, _ := os.Hostname()
	e.Actor, e.Client, e.Source = localActor(), cliClient, host
	if err := appendEntry(ctx, db, e); err != nil {
		return err
	}
	fmt.Fprintf(out, "confirmed: %s %s %s, by reviewer %s at %s (recorded in the audit ledger)\n", kind, id, name, reviewer, e.Time.Format(time.RFC3339))
	return nil
}

func optTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func reviewRow(s compliance.ReviewSubject) []string {
	glass, unreviewed := "0", "0"
	if s.BreakGlass != nil {
		glass, unreviewed = strconv.Itoa(s.BreakGlass.Grants), strconv.Itoa(s.BreakGlass.Unreviewed)
	}
	confirmed, reviewer := "never", ""
	if s.Confirmed != nil {
		confirmed, reviewer = s.Confirmed.At.Format(time.RFC3339), s.Confirmed.Reviewer
	}
	mfa := s.MFA
	if s.Kind == compliance.KindPerson && s.MFARequired {
		mfa += " (required)"
	}
	return []string{s.Kind, s.ID, s.Name, s.Role, strings.Join(s.Scopes, " "), s.Status, optTime(s.LastUse), mfa,
		glass, unreviewed, confirmed, reviewer, s.Due.Format(time.RFC3339), strconv.FormatBool(s.Overdue)}
}

var reviewHeader = []string{"kind", "id", "name", "role", "scopes", "status", "last_use", "mfa", "break_glass", "break_glass_unreviewed", "confirmed", "reviewer", "due", "overdue"}

func writeReviewCSV(w io.Writer, subjects []compliance.ReviewSubject) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(reviewHeader); err != nil {
		return err
	}
	for _, s := range subjects {
		row := reviewRow(s)
		for i, v := range row {
			row[i] = csvSafe(v)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a spreadsheet from reading a cell as a formula (a name
// is chosen by whoever created the client).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func writeReviewText(w io.Writer, subjects []compliance.ReviewSubject) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tNAME\tROLE\tSTATUS\tLAST USE\tMFA\tBREAK-GLASS\tCONFIRMED\tDUE\t")
	overdue := 0
	for _, s := range subjects {
		r := reviewRow(s)
		flag := ""
		if s.Overdue {
			flag, overdue = "OVERDUE", overdue+1
		}
		name := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, s.Name)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s (%s unreviewed)\t%s\t%s %s\t\n", r[0], r[1], name, r[3], r[5], r[6], r[7], r[8], r[9], r[10], s.Due.Format(time.DateOnly), flag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d people and clients, %d overdue for confirmation ('ward access confirm')\n", len(subjects), overdue)
	return err
}

// serverConfig is the configuration a server recorded at its start (its
// server-config ledger entry).
type serverConfig struct {
	at     time.Time
	index  int64
	fields map[string]string
}

// lastServerConfig returns the latest server-config entry, or nil when no
// server recorded one.
func lastServerConfig(ctx context.Context, db store.Store) (*serverConfig, error) {
	var last *serverConfig
	q := store.ActorQuery{Client: "ward-serve", AfterIndex: -1, Count: 1000}
	for {
		rows, err := db.LedgerEntriesByActor(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			e, err := ledger.DecodeEntry(row.Entry)
			if err != nil {
				return nil, fmt.Errorf("ledger entry %d: %w", row.Index, err)
			}
			if e.Action != actionServerConfig {
				continue
			}
			sc := &serverConfig{at: e.Time, index: row.Index, fields: map[string]string{}}
			for _, kv := range strings.Fields(e.Detail) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					sc.fields[k] = v
				}
			}
			last = sc
		}
		if len(rows) < q.Count {
			return last, nil
		}
		q.Since, q.AfterIndex = rows[len(rows)-1].Time, rows[len(rows)-1].Index
	}
}
