package records

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
)

// TestMarkEmergency: an entry is marked BTG, naming the grants, exactly
// when it touched a patient reached only through a grant.
func TestMarkEmergency(t *testing.T) {
	c := Caller{Subject: policy.Subject{UserID: "u1", Related: []string{"a", "b"}, Emergency: []string{"b", "c", "d"}},
		Grants: map[string]string{"b": "g-b", "c": "g-c", "d": "g-d"}}
	for _, tc := range []struct {
		name     string
		patients []string
		reached  []string
		detail   string
	}{
		{"nobody", nil, nil, "200"},
		{"shared resources", []string{"", ""}, nil, "200"},
		{"related only", []string{"a", "a"}, nil, "200"},
		{"related and granted: the relationship wins", []string{"b"}, nil, "200"},
		{"one emergency patient", []string{"c"}, []string{"c"}, "200 btg-grant=g-c"},
		{"a search across both", []string{"d", "a", "c", "", "d"}, []string{"c", "d"}, "200 btg-grant=g-c,g-d"},
		{"unrelated, ungranted", []string{"z"}, nil, "200"},
	} {
		e := ledger.Entry{Detail: "200"}
		got := c.MarkEmergency(&e, tc.patients...)
		wantPurpose := ""
		if tc.reached != nil {
			wantPurpose = "BTG"
		}
		if !slices.Equal(got, tc.reached) || e.Detail != tc.detail || e.Purpose != wantPurpose {
			t.Errorf("%s: reached %v, entry %q %q; want %v, %q %q", tc.name, got, e.Purpose, e.Detail, tc.reached, wantPurpose, tc.detail)
		}
	}
	// A write's entry has no detail of its own.
	e := ledger.Entry{}
	if c.MarkEmergency(&e, "c"); e.Detail != "btg-grant=g-c" {
		t.Errorf("write entry detail %q", e.Detail)
	}
	// Without grants nothing is marked, whatever the patients.
	e = ledger.Entry{Purpose: "TREAT"}
	if got := (Caller{}).MarkEmergency(&e, "c"); got != nil || e.Purpose != "TREAT" {
		t.Errorf("caller without grants marked %v: %+v", got, e)
	}
}

func TestFreeText(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		required bool
		ok       bool
	}{
		{"  trauma bay 2, unresponsive\n", "trauma bay 2, unresponsive", true, true},
		{"line one\nline two\ttabbed", "line one\nline two\ttabbed", true, true},
		{"   ", "", true, false},
		{"", "", false, true},
		{strings.Repeat("é", 1000), strings.Repeat("é", 1000), true, true},
		{strings.Repeat("é", 1001), "", true, false},
		{"bell\a", "", true, false},
		{"escape \x1b[31m", "", true, false},
		{"bad \xff utf-8", "", true, false},
	} {
		got, err := freeText("reason", tc.in, MaxEmergencyReason, tc.required)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("freeText(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), tc.in)) {
			t.Errorf("freeText(%q) error %v: want ErrInvalid without the text", tc.in, err)
		}
	}
}
