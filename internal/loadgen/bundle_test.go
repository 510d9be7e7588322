package loadgen

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		loc, typ, id string
		ok           bool
	}{
		{"Patient/abc-1/_history/1", "Patient", "abc-1", true},
		{"Patient/abc-1", "Patient", "abc-1", true},
		{"https://127.0.0.1:8443/fhir/Observation/o.9/_history/3", "Observation", "o.9", true},
		{"/fhir/Encounter/e1/", "Encounter", "e1", true},
		{"", "", "", false},
		{"Patient", "", "", false},
		{"patient/abc", "", "", false}, // type must start upper case
		{"Patient/a b", "", "", false}, // id syntax
		{"Patient/" + strings.Repeat("a", 65), "", "", false},
		{"Patient/abc/_history/", "", "", false}, // empty version
		{"Patient/abc/_history/v!1", "", "", false},
		{"Patient/../../_history/1", "", "", false},
		{"%zz", "", "", false},
		{"Patient/..", "", "", false}, // would resolve to the base URL
		{"Patient/./_history/1", "", "", false},
	} {
		typ, id, err := parseLocation(tc.loc)
		if (err == nil) != tc.ok || typ != tc.typ || id != tc.id {
			t.Errorf("parseLocation(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.loc, typ, id, err, tc.typ, tc.id, tc.ok)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"Patient/1/_history/1", "https://h/fhir/Observation/x", "a/b/c/d", "/_history/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, loc string) {
		typ, id, err := parseLocation(loc)
		if err != nil {
			return
		}
		if !validType(typ) || !validID(id) || strings.Trim(id, ".") == "" {
			t.Fatalf("parseLocation(%q) accepted type %q id %q", loc, typ, id)
		}
	})
}

// txResponse builds a transaction-response with the given statuses and locations.
func txResponse(t testing.TB, pairs ...[2]string) []byte {
	var entries []any
	for _, p := range pairs {
		entries = append(entries, map[string]any{"response": map[string]any{"status": p[0], "location": p[1]}})
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTransactionResponse(t *testing.T) {
	types := []string{"Patient", "Encounter", "Observation"}
	for _, tc := range []struct {
		name    string
		body    []byte
		want    []string
		wantErr string
	}{
		{"in order", txResponse(t, [2]string{"201 Created", "Patient/p1/_history/1"}, [2]string{"201 Created", "Encounter/e1/_history/1"}, [2]string{"200 OK", "Observation/o1/_history/2"}), []string{"p1", "e1", "o1"}, ""},
		{"reordered", txResponse(t, [2]string{"201 Created", "Encounter/e1/_history/1"}, [2]string{"201 Created", "Patient/p1/_history/1"}, [2]string{"201", "Observation/o1"}), nil, "out of order"},
		{"reversed", txResponse(t, [2]string{"201", "Observation/o1"}, [2]string{"201", "Encounter/e1"}, [2]string{"201", "Patient/p1"}), nil, "entry 0 location names Observation, request entry is Patient"},
		{"too few entries", txResponse(t, [2]string{"201 Created", "Patient/p1"}), nil, "1 entries for 3"},
		{"failed entry", txResponse(t, [2]string{"201 Created", "Patient/p1"}, [2]string{"400 Bad Request", "Encounter/e1"}, [2]string{"201", "Observation/o1"}), nil, "entry 1 status"},
		{"no status", txResponse(t, [2]string{"", "Patient/p1"}, [2]string{"201", "Encounter/e1"}, [2]string{"201", "Observation/o1"}), nil, "entry 0 status"},
		{"bad location", txResponse(t, [2]string{"201", "Patient/p 1"}, [2]string{"201", "Encounter/e1"}, [2]string{"201", "Observation/o1"}), nil, "invalid id"},
		{"wrong bundle type", []byte(`{"resourceType":"Bundle","type":"batch-response","entry":[]}`), nil, "not a transaction-response"},
		{"missing response", []byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[{},{},{}]}`), nil, "has no response"},
		{"not json", []byte(`<html>`), nil, "syntax error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTransactionResponse(tc.body, types)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseTransactionResponse(f *testing.F) {
	f.Add(txResponse(f, [2]string{"201 Created", "Patient/p1/_history/1"}, [2]string{"201", "Observation/o"}))
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{}}]}`))
	types := []string{"Patient", "Observation"}
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := parseTransactionResponse(body, types)
		if err != nil {
			return
		}
		if len(ids) != len(types) {
			t.Fatalf("%d ids for %d entries", len(ids), len(types))
		}
		for _, id := range ids {
			if !validID(id) {
				t.Fatalf("invalid id %q accepted", id)
			}
		}
	})
}

func TestParseRequestBundle(t *testing.T) {
	good := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","name":[{"family":"Doe"},{"family":"Roe"}]},"request":{"method":"POST","url":"Patient"}},
	 {"fullUrl":"urn:uuid:2","resource":{"resourceType":"Organization","name":"Clinic"},"request":{"method":"POST","url":"Organization"}},
	 {"fullUrl":"urn:uuid:3","resource":{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"8302-2"},{"system":"http://snomed.info/sct","code":"1"}]}},"request":{"method":"PUT","url":"Observation/x"}}]}`
	fam, codes := map[string]bool{}, map[string]bool{}
	b, err := parseRequestBundle([]byte(good), fam, codes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.types, []string{"Patient", "Organization", "Observation"}) || !slices.Equal(b.patients, []int{0}) {
		t.Errorf("types %v patients %v", b.types, b.patients)
	}
	if !slices.Equal(sortedKeys(fam), []string{"Doe", "Roe"}) || !slices.Equal(sortedKeys(codes), []string{"8302-2"}) {
		t.Errorf("families %v codes %v", fam, codes)
	}
	for _, tc := range []struct{ name, doc, wantErr string }{
		{"batch", `{"resourceType":"Bundle","type":"batch","entry":[]}`, "not a transaction Bundle"},
		{"no entries", `{"resourceType":"Bundle","type":"transaction"}`, "no entries"},
		{"delete entry", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/1"}}]}`, "POST or PUT"},
		{"no resource type", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{},"request":{"method":"POST"}}]}`, "resourceType"},
		{"not a bundle", `{"resourceType":"Patient"}`, "not a transaction Bundle"},
		{"truncated", good[:100], "not a Bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRequestBundle([]byte(tc.doc), map[string]bool{}, map[string]bool{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzParseRequestBundle(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","name":[{"family":"X"}]},"request":{"method":"POST"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"1"}]}},"request":{"method":"PUT"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseRequestBundle(body, map[string]bool{}, map[string]bool{})
		if err != nil {
			return
		}
		if len(b.types) == 0 {
			t.Fatal("accepted a bundle without entries")
		}
		for _, typ := range b.types {
			if !validType(typ) {
				t.Fatalf("accepted resource type %q", typ)
			}
		}
	})
}
