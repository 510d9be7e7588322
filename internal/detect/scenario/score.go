package scenario

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/detect"
)

// RuleScore is one rule's result over a scenario.
type RuleScore struct {
	Rule string
	// Planted malicious episodes labelled with the rule, and how many of
	// them an alert of the rule matched.
	Planted, Detected int
	// Alerts of the rule after the warm-up: true positives (matching a
	// malicious episode), hard cases (matching a benign hard case
	// labelled with the rule) and other false positives.
	Alerts, True, Hard, False int
	// Hard cases labelled with the rule, and how many set it off.
	HardPlanted, HardFired int
	Precision, Recall      float64 // Precision counts hard cases as false; NaN-free: 1 when there is nothing to count
}

// Report is a scenario's score, rule by rule.
type Report struct {
	Entries int64
	Rules   []RuleScore
	Missed  []string // malicious episodes some labelled rule did not catch: "name/rule"
	// FalseAlerts are the false positives outside hard cases, for
	// diagnosis: rule, actor or source, summary; never a patient.
	FalseAlerts []string
}

// matches reports whether alert a is about episode ep: the same actor,
// source or (for Global) every source, and evidence among the episode's
// entries or a time overlapping the episode or the rule's lookback after
// it (a window that still holds the episode's entries).
func matches(a detect.Alert, ep *Episode, lookback time.Duration) bool {
	switch {
	case ep.Global:
		if !strings.Contains(a.Key, "|*|") {
			return false
		}
	case ep.Actor != "":
		if a.Actor != ep.Actor {
			return false
		}
	case ep.Source != "":
		if a.Source != ep.Source {
			return false
		}
	}
	if !a.Last.Before(ep.From) && !a.First.After(ep.To.Add(lookback)) {
		return true
	}
	// An alert raised after the episode over a window that still holds
	// the episode's entries is about them.
	for _, i := range a.Evidence {
		if i >= ep.First && i <= ep.Last {
			return true
		}
	}
	return false
}

// Score matches alerts (the latest version of each Key) against the
// labels of tr. Alerts whose latest entry falls in the warm-up are left
// out, as a runner replaying history before its cursor saves none.
func Score(tr *Traffic, alerts []detect.Alert) Report {
	r := Report{Entries: tr.Entries}
	lookback := lookbacks(tr.Detect)
	for _, rule := range detect.Rules {
		sc := RuleScore{Rule: rule}
		detected, hardFired := map[*Episode]bool{}, map[*Episode]bool{}
		for _, a := range alerts {
			if a.Rule != rule || a.Last.Before(tr.EvalFrom) {
				continue
			}
			sc.Alerts++
			kind := "false"
			for _, ep := range tr.Episodes {
				if !matches(a, ep, lookback[rule]) {
					continue
				}
				switch {
				case ep.Malicious && (slices.Contains(ep.Rules, rule) || slices.Contains(ep.Also, rule)):
					kind = "true"
					detected[ep] = true
				case !ep.Malicious && slices.Contains(ep.Rules, rule):
					hardFired[ep] = true
					if kind == "false" {
						kind = "hard"
					}
				}
			}
			switch kind {
			case "true":
				sc.True++
			case "hard":
				sc.Hard++
			default:
				sc.False++
				who := a.Actor
				if who == "" {
					who = a.Source
				}
				r.FalseAlerts = append(r.FalseAlerts, fmt.Sprintf("%s %s %s: %s", rule, who, a.First.Format("2006-01-02T15:04"), a.Summary))
			}
		}
		for _, ep := range tr.Episodes {
			if !ep.Malicious && slices.Contains(ep.Rules, rule) {
				sc.HardPlanted++
				if hardFired[ep] {
					sc.HardFired++
				}
			}
			if ep.Malicious && slices.Contains(ep.Rules, rule) {
				sc.Planted++
				if detected[ep] {
					sc.Detected++
				} else {
					r.Missed = append(r.Missed, ep.Name+"/"+rule)
				}
			}
		}
		sc.Precision, sc.Recall = 1, 1
		if sc.Alerts > 0 {
			sc.Precision = float64(sc.True) / float64(sc.Alerts)
		}
		if sc.Planted > 0 {
			sc.Recall = float64(sc.Detected) / float64(sc.Planted)
		}
		r.Rules = append(r.Rules, sc)
	}
	return r
}

// lookbacks are how long after its last entry each rule may still
// alert on an episode, under cfg.
func lookbacks(cfg detect.Config) map[string]time.Duration {
	d, err := detect.New(cfg, &detect.MemoryFacts{})
	if err != nil {
		return nil
	}
	c := d.Config()
	return map[string]time.Duration{
		detect.RuleManyPatients:       time.Duration(c.ManyPatients.Window),
		detect.RuleUnrelatedPatient:   time.Duration(max(c.UnrelatedPatient.BreakGlassWindow, c.UnrelatedPatient.OutsideWindow)),
		detect.RuleServiceVolume:      24 * time.Hour, // the daily count
		detect.RuleDenialBurst:        time.Duration(c.DenialBurst.Window),
		detect.RuleCredentialStuffing: time.Duration(c.CredentialStuffing.Window),
		detect.RuleTokenTwoSources:    time.Duration(c.TokenSources.Window),
		detect.RuleSearchSnooping:     time.Duration(c.SearchSnooping.Window),
	}
}

// Table formats the report as a Markdown table.
func (r Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| rule | planted | detected | recall | alerts | true | on hard cases | other false | precision | hard cases fired |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Rules {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %d | %d | %d | %d | %.2f | %d/%d |\n",
			s.Rule, s.Planted, s.Detected, s.Recall, s.Alerts, s.True, s.Hard, s.False, s.Precision, s.HardFired, s.HardPlanted)
	}
	return b.String()
}
