package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/store"
)

const alertsSummary = `List the anomaly detector's alerts, newest first: the rule, the actor,
the evidence (ledger indexes, for 'ward audit prove') and the state. Alerts
are worked (acknowledged, closed, grouped into incidents) through the
admin API (/admin/alerts, /admin/incidents) by a security officer.

  ward alerts list [--status open|acknowledged|closed] [--rule R] [--actor ID] [--limit N] [--json]`

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "alerts", "list")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("alerts "+sub, alertsSummary)
	st.register(fs)
	status := fs.String("status", "", "only alerts in this state: open, acknowledged or closed")
	rule := fs.String("rule", "", "only alerts of this rule")
	actor := fs.String("actor", "", "only alerts naming this user or client id")
	limit := fs.Int("limit", 100, "at most this many alerts")
	asJSON := fs.Bool("json", false, "print JSON: {\"alerts\": [...], \"more\": bool}")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if *limit < 1 {
		return usagef("--limit must be at least 1")
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := incident.New(incident.Config{Store: db})
	if err != nil {
		return err
	}
	alerts, more, err := svc.Alerts(ctx, store.AlertQuery{Status: *status, Rule: *rule, Actor: *actor, Count: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			Alerts []incident.AlertView `json:"alerts"`
			More   bool                 `json:"more"`
		}{Alerts: []incident.AlertView{}, More: more}
		for _, a := range alerts {
			out.Alerts = append(out.Alerts, incident.ViewOf(a))
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAISED\tRULE\tSEVERITY\tACTOR\tSTATUS\tSUMMARY\tEVIDENCE")
	for _, a := range alerts {
		ev := make([]string, 0, min(len(a.Evidence), 5))
		for _, i := range a.Evidence[:min(len(a.Evidence), 5)] {
			ev = append(ev, fmt.Sprint(i))
		}
		if len(a.Evidence) > 5 {
			ev = append(ev, "...")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Raised.UTC().Format(time.RFC3339), a.Rule, a.Severity,
			a.Actor, a.Status, a.Summary, strings.Join(ev, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		_, err = fmt.Fprintf(stdout, "(more: raise --limit)\n")
	}
	return err
}
