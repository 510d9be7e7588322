package detect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig(strings.NewReader(`{"manyPatients": {"patients": 80, "window": "30m"}, "vip": {"disabled": true}, "offHours": {"timezone": "Europe/Paris"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ManyPatients.Patients != 80 || time.Duration(c.ManyPatients.Window) != 30*time.Minute || c.Enabled(RuleVIP) || !c.Enabled(RuleOffHours) {
		t.Fatalf("config %+v", c)
	}
	d, err := New(c, &MemoryFacts{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Config(); got.ManyPatients.Ceiling != 200 || got.DenialBurst.Denials != 20 {
		t.Fatalf("defaults not filled: %+v", got)
	}
	// The defaults written out load back to themselves.
	b, err := json.Marshal(d.Config())
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadConfig(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := json.Marshal(again); string(b2) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", b, b2)
	}

	for _, bad := range []string{
		`{"manyPatients": {"patiens": 80}}`,
		`{"manyPatients": {"patients": 80}, "manyPatients": {}}`,
		`{"vip": {"exempt": ["a"], "exempt": ["b"]}}`,
		`{"denialBurst": {"window": 300}}`,
		`{"denialBurst": {"severity": "urgent"}}`,
		`{"offHours": {"timezone": "Mars/Olympus"}}`,
		`{"tokenTwoSources": {"sameNetworks": ["10.0.0.0/33"]}}`,
		`{} {}`,
	} {
		if _, err := LoadConfig(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
