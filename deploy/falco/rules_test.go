// Package falco holds Ward's Falco rules; its test checks their shape.
package falco

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestRulesShape checks ward_rules.yaml without Falco: every rule has a
// description, a condition, an output and a valid priority; every macro
// or list a rule or macro names as ward_* is defined; and the three
// behaviours issue 14 names are covered.
func TestRulesShape(t *testing.T) {
	b, err := os.ReadFile("ward_rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	blocks := strings.Split("\n"+text, "\n- ")[1:]
	defined := map[string]bool{}
	var rules []map[string]string
	key := regexp.MustCompile(`(?m)^ {0,2}(rule|macro|list|desc|condition|output|priority|tags|items): ?(.*)$`)
	for _, blk := range blocks {
		fields := map[string]string{}
		lines := strings.Split(blk, "\n")
		var cur string
		for _, l := range lines {
			if m := key.FindStringSubmatch(l); m != nil {
				cur = m[1]
				fields[cur] = strings.TrimSpace(strings.TrimPrefix(m[2], ">"))
			} else if cur != "" && strings.HasPrefix(l, "    ") {
				fields[cur] += " " + strings.TrimSpace(l)
			}
		}
		switch {
		case fields["macro"] != "":
			defined[fields["macro"]] = true
		case fields["list"] != "":
			defined[fields["list"]] = true
		case fields["rule"] != "":
			rules = append(rules, fields)
		default:
			t.Errorf("a block is neither rule, macro nor list: %.60q", blk)
		}
	}
	ref := regexp.MustCompile(`\bward_[a-z_]+`)
	for _, r := range rules {
		for _, k := range []string{"desc", "condition", "output", "priority"} {
			if r[k] == "" {
				t.Errorf("rule %q has no %s", r["rule"], k)
			}
		}
		switch r["priority"] {
		case "EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFORMATIONAL", "DEBUG":
		default:
			t.Errorf("rule %q: priority %q", r["rule"], r["priority"])
		}
		for _, name := range ref.FindAllString(r["condition"], -1) {
			if !defined[name] {
				t.Errorf("rule %q names %s, which is not defined", r["rule"], name)
			}
		}
	}
	var names []string
	for _, r := range rules {
		names = append(names, r["rule"])
	}
	all := strings.Join(names, "|")
	for _, want := range []string{"spawned a process", "wrote outside its data directory", "read Ward's key file"} {
		if !strings.Contains(all, want) {
			t.Errorf("no rule for %q: %s", want, all)
		}
	}
}
