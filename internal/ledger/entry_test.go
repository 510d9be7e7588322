package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func sampleEntry(i int) Entry {
	return Entry{
		Time:         time.Date(2025, 3, 1, 12, 0, 0, i, time.UTC),
		Actor:        "user/" + string(rune('a'+i%26)),
		Client:       "client-1",
		Source:       "10.0.0.7:51234",
		Action:       "read",
		ResourceType: "Observation",
		ResourceID:   "obs-" + time.Duration(i).String(),
		Version:      "3",
		Patient:      "pat-42",
		Outcome:      "allowed",
		Purpose:      "TREAT",
		RequestID:    "req-9",
		Query:        []string{"code", "date"},
		Detail:       "ok",
	}
}

func TestEncodeGolden(t *testing.T) {
	e := sampleEntry(0)
	e.Time = time.Date(2025, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	got, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"time":"2025-03-01T12:00:00.000000005Z","actor":"user/a","client":"client-1",` +
		`"source":"10.0.0.7:51234","action":"read","resourceType":"Observation","resourceId":"obs-0s",` +
		`"version":"3","patient":"pat-42","outcome":"allowed","purpose":"TREAT","requestId":"req-9",` +
		`"query":["code","date"],"detail":"ok"}`
	if string(got) != want {
		t.Fatalf("Encode =\n%s\nwant\n%s", got, want)
	}
	// It is JSON that a standard parser reads back to the same values.
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if m["actor"] != "user/a" || m["v"] != 1.0 {
		t.Fatalf("standard decoder read %v", m)
	}
}

func TestEncodeEscapesAndBounds(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, field string)
	}{
		{"crlf injection", "a\r\nX-Forged: 1", func(t *testing.T, f string) {
			if f != "\"a\uFFFD\uFFFDX-Forged: 1\"" {
				t.Errorf("got %s", f)
			}
		}},
		{"controls", "\x00\x1b[31m\x7f\u0085\t", func(t *testing.T, f string) {
			if f != "\"\uFFFD\uFFFD[31m\uFFFD\uFFFD\uFFFD\"" {
				t.Errorf("got %s", f)
			}
		}},
		{"separators and bidi", "\u2028\u202e\u2066\ufeff\u200f", func(t *testing.T, f string) {
			if f != "\"\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\"" {
				t.Errorf("got %s", f)
			}
		}},
		{"quotes", `"\`, func(t *testing.T, f string) {
			if f != `"\"\\"` {
				t.Errorf("got %s", f)
			}
		}},
		{"invalid utf8", "a\xffb", func(t *testing.T, f string) {
			if f != "\"a\uFFFDb\"" {
				t.Errorf("got %s", f)
			}
		}},
		{"long value cut at rune", long, func(t *testing.T, f string) {
			s := f[1 : len(f)-1]
			if len(s) > MaxField || !strings.HasSuffix(s, TruncatedMarker) || !utf8.ValidString(s) {
				t.Errorf("got %d bytes %q", len(s), s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEntry(1)
			e.Detail = tt.in
			b, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(b, []byte(`"detail":`))
			field := string(b[i+len(`"detail":`) : len(b)-1])
			tt.check(t, field)
			if bytes.ContainsAny(b, "\r\n\x00") {
				t.Errorf("raw control byte in %q", b)
			}
			roundTrip(t, b)
			d, _ := DecodeEntry(b)
			if strings.IndexFunc(d.Detail, mustEscape) >= 0 {
				t.Errorf("decoded detail %q holds a control or formatting character", d.Detail)
			}
		})
	}
}

// Entries written before Encode replaced control and formatting
// characters hold them escaped; they still decode, to the characters, and
// have one encoding.
func TestDecodeEscapedControls(t *testing.T) {
	old := sampleEntry(1)
	old.Actor, old.Detail = "a\r\nX-Forged: 1", "\x00\u202e\u2028\t"
	old.Query, old.Patient, old.Patients = []string{"\x1bq"}, "", []string{"p\n1", "p2"}
	b, err := old.appendEncoding(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"a\r\nX-Forged: 1"`)) || !bytes.Contains(b, []byte(`"\u0000\u202e\u2028\t"`)) {
		t.Fatalf("not the escaped form: %s", b)
	}
	d, err := DecodeEntry(b)
	if err != nil {
		t.Fatalf("an entry with escaped controls no longer decodes: %v", err)
	}
	if !reflect.DeepEqual(d, old) {
		t.Fatalf("decoded %+v, want %+v", d, old)
	}
	// Another escape of the same character is still not canonical.
	if _, err := DecodeEntry(bytes.Replace(b, []byte(`\r\n`), []byte(`\u000d\n`), 1)); err == nil {
		t.Fatal("accepted a second encoding of an escaped control")
	}
}

func TestEncodeQueryBound(t *testing.T) {
	e := sampleEntry(2)
	e.Query = nil
	for range 40 {
		e.Query = append(e.Query, strings.Repeat("p", 100))
	}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Query) != MaxQuery || d.Query[MaxQuery-1] != TruncatedMarker+"9 more" {
		t.Fatalf("query bounded to %d, last %q", len(d.Query), d.Query[len(d.Query)-1])
	}
	for _, q := range d.Query {
		if len(q) > MaxQueryName {
			t.Fatalf("query name of %d bytes", len(q))
		}
	}
}

func TestEncodeRejectsBadTime(t *testing.T) {
	for _, tm := range []time.Time{{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		e := sampleEntry(0)
		e.Time = tm
		if _, err := e.Encode(); err == nil {
			t.Errorf("Encode accepted time %v", tm)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	for i := range 5 {
		e := sampleEntry(i)
		if i == 3 {
			e.Query = nil
		}
		if i == 4 {
			e.Patient, e.Patients = "", []string{"pat-1", "pat-2", "pat-3"}
		}
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, e) {
			t.Fatalf("Decode(Encode(e)) = %+v, want %+v", d, e)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := sampleEntry(0).Encode()
	if err != nil {
		t.Fatal(err)
	}
	g := string(good)
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"whitespace", strings.Replace(g, `"v":1`, `"v": 1`, 1)},
		{"trailing newline", g + "\n"},
		{"trailing data", g + "{}"},
		{"version 2", strings.Replace(g, `"v":1`, `"v":2`, 1)},
		{"unknown field", strings.Replace(g, `"detail":"ok"`, `"detail":"ok","x":"y"`, 1)},
		{"duplicate field", strings.Replace(g, `"actor":"user/a"`, `"actor":"user/a","actor":"user/b"`, 1)},
		{"missing field", strings.Replace(g, `"client":"client-1",`, ``, 1)},
		{"key order", strings.Replace(g, `"actor":"user/a","client":"client-1"`, `"client":"client-1","actor":"user/a"`, 1)},
		{"key case", strings.Replace(g, `"actor"`, `"Actor"`, 1)},
		{"needless escape", strings.Replace(g, `"user/a"`, `"user\u002fa"`, 1)},
		{"upper-case hex escape", strings.Replace(g, `"ok"`, `"\u001B"`, 1)},
		{"raw newline", strings.Replace(g, `"ok"`, "\"o\nk\"", 1)},
		{"short time", strings.Replace(g, `12:00:00.000000000Z`, `12:00:00Z`, 1)},
		{"offset time", strings.Replace(g, `12:00:00.000000000Z`, `12:00:00.000000000+00:00`, 1)},
		{"time not a date", strings.Replace(g, `2025-03-01`, `2025-02-30`, 1)},
		{"query not strings", strings.Replace(g, `["code","date"]`, `[1]`, 1)},
		{"query trailing comma", strings.Replace(g, `["code","date"]`, `["code",]`, 1)},
		{"over bound", strings.Replace(g, `"ok"`, `"`+strings.Repeat("x", MaxField+1)+`"`, 1)},
		{"invalid utf8", strings.Replace(g, `"ok"`, "\"\xff\"", 1)},
		{"lone surrogate", strings.Replace(g, `"ok"`, `"\ud800"`, 1)},
		{"unterminated", g[:len(g)-3]},
		{"huge", strings.Repeat(" ", MaxEntrySize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == g {
				t.Fatal("test case did not change the input")
			}
			if _, err := DecodeEntry([]byte(tt.in)); err == nil {
				t.Fatalf("DecodeEntry accepted %q", tt.in)
			}
		})
	}
}

// Version 2 adds the patients list; every other spelling of it is refused.
func TestDecodeRejectsPatients(t *testing.T) {
	e := sampleEntry(0)
	e.Patient, e.Patients = "", []string{"a", "b", "c"}
	good, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	g := string(good)
	if _, err := DecodeEntry(good); err != nil {
		t.Fatalf("the good version 2 entry: %v", err)
	}
	v1, err := sampleEntry(0).Encode()
	if err != nil {
		t.Fatal(err)
	}
	many := make([]string, MaxPatients+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"p%05d"`, i)
	}
	list := `["a","b","c"]`
	tests := []struct{ name, in string }{
		{"unsorted", strings.Replace(g, list, `["b","a","c"]`, 1)},
		{"duplicate", strings.Replace(g, list, `["a","b","b","c"]`, 1)},
		{"empty id", strings.Replace(g, list, `["","a","b"]`, 1)},
		{"empty list", strings.Replace(g, list, `[]`, 1)},
		{"id over bound", strings.Replace(g, list, `["a","b","`+strings.Repeat("c", MaxPatientID+1)+`"]`, 1)},
		{"too many", strings.Replace(g, list, "["+strings.Join(many, ",")+"]", 1)},
		{"not strings", strings.Replace(g, list, `["a",1]`, 1)},
		{"trailing comma", strings.Replace(g, list, `["a","b",]`, 1)},
		{"whitespace", strings.Replace(g, list, `["a", "b","c"]`, 1)},
		{"needless escape", strings.Replace(g, list, `["\u0061","b","c"]`, 1)},
		{"version 1 with patients", strings.Replace(g, `"v":2`, `"v":1`, 1)},
		{"version 2 without patients", strings.Replace(string(v1), `"v":1`, `"v":2`, 1)},
		{"version 3", strings.Replace(g, `"v":2`, `"v":3`, 1)},
		{"version 12", strings.Replace(g, `"v":2`, `"v":12`, 1)},
		{"patients before patient", strings.Replace(g, `"patient":"","patients":`+list, `"patients":`+list+`,"patient":""`, 1)},
		{"patients at the end", strings.Replace(strings.Replace(g, `,"patients":`+list, ``, 1), `}`, `,"patients":`+list+`}`, 1)},
		{"patients null", strings.Replace(g, list, `null`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == g {
				t.Fatal("test case did not change the input")
			}
			if _, err := DecodeEntry([]byte(tt.in)); err == nil {
				t.Fatalf("DecodeEntry accepted %.300q", tt.in)
			}
		})
	}
}

// An entry naming several patients is version 2; one without is byte for
// byte what version 1 always wrote.
func TestEncodePatientsGolden(t *testing.T) {
	e := sampleEntry(0)
	e.Patient, e.Patients = "", []string{"pat-9", "pat-10", "pat-9", "", "pat-1"}
	got, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":2,"time":"2025-03-01T12:00:00.000000000Z","actor":"user/a","client":"client-1",` +
		`"source":"10.0.0.7:51234","action":"read","resourceType":"Observation","resourceId":"obs-0s",` +
		`"version":"3","patient":"","patients":["pat-1","pat-10","pat-9"],"outcome":"allowed","purpose":"TREAT","requestId":"req-9",` +
		`"query":["code","date"],"detail":"ok"}`
	if string(got) != want {
		t.Fatalf("Encode =\n%s\nwant\n%s", got, want)
	}
	if e.Patients[0] != "pat-9" {
		t.Fatal("Encode reordered the caller's slice")
	}
	var m struct{ Patients []string }
	if err := json.Unmarshal(got, &m); err != nil || len(m.Patients) != 3 {
		t.Fatalf("a standard decoder read %+v, %v", m, err)
	}
	roundTrip(t, got)

	v1, err := sampleEntry(0).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, none := range [][]string{nil, {}, {"", ""}} {
		e := sampleEntry(0)
		e.Patients = none
		b, err := e.Encode()
		if err != nil || !bytes.Equal(b, v1) {
			t.Fatalf("Patients %q encodes as %s, want the version 1 bytes %s", none, b, v1)
		}
	}
}

// An entry naming the patients a request asked about, or its token, is
// version 3: the patients list is always present, then asked, and the
// token follows the request id.
func TestEncodeAskedTokenGolden(t *testing.T) {
	e := sampleEntry(0)
	e.SetAsked([]string{"pat-2", "", "pat-1", "pat-2"})
	e.Token = "tok:ab12"
	got, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":3,"time":"2025-03-01T12:00:00.000000000Z","actor":"user/a","client":"client-1",` +
		`"source":"10.0.0.7:51234","action":"read","resourceType":"Observation","resourceId":"obs-0s",` +
		`"version":"3","patient":"pat-42","patients":[],"asked":["pat-1","pat-2"],"outcome":"allowed","purpose":"TREAT","requestId":"req-9",` +
		`"token":"tok:ab12","query":["code","date"],"detail":"ok"}`
	if string(got) != want {
		t.Fatalf("Encode =\n%s\nwant\n%s", got, want)
	}
	roundTrip(t, got)
	g := string(got)
	only := e
	only.Asked = nil
	tokenOnly, err := only.Encode()
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tokenOnly)
	tests := []struct{ name, in string }{
		{"version 2", strings.Replace(g, `"v":3`, `"v":2`, 1)},
		{"asked unsorted", strings.Replace(g, `["pat-1","pat-2"]`, `["pat-2","pat-1"]`, 1)},
		{"asked missing", strings.Replace(g, `,"asked":["pat-1","pat-2"]`, ``, 1)},
		{"token missing", strings.Replace(g, `,"token":"tok:ab12"`, ``, 1)},
		{"neither asked nor token", strings.Replace(strings.Replace(g, `"tok:ab12"`, `""`, 1), `["pat-1","pat-2"]`, `[]`, 1)},
		{"patients absent", strings.Replace(g, `"patients":[],`, ``, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == g {
				t.Fatal("test case did not change the input")
			}
			if _, err := DecodeEntry([]byte(tt.in)); err == nil {
				t.Fatalf("DecodeEntry accepted %.300q", tt.in)
			}
		})
	}
}

func TestCanonicalPatients(t *testing.T) {
	long := strings.Repeat("x", MaxPatientID+10)
	cut := long[:MaxPatientID-len(TruncatedMarker)] + TruncatedMarker
	tests := []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{}, nil},
		{[]string{""}, nil},
		{[]string{"b", "a", "b", "", "c"}, []string{"a", "b", "c"}},
		{[]string{"a\xff"}, []string{"a\uFFFD"}},
		{[]string{long, "a", long}, []string{"a", cut}},
	}
	for _, tt := range tests {
		got := CanonicalPatients(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CanonicalPatients(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if again := CanonicalPatients(got); !reflect.DeepEqual(again, got) {
			t.Errorf("CanonicalPatients is not idempotent: %q then %q", got, again)
		}
	}
	ok := []string{"a", "b"}
	if got := CanonicalPatients(ok); &got[0] != &ok[0] {
		t.Error("a canonical list was copied")
	}
}

func TestSetPatients(t *testing.T) {
	many := make([]string, 0, MaxPatients+5)
	for i := range MaxPatients + 5 {
		many = append(many, fmt.Sprintf("p%05d", MaxPatients+4-i)) // reversed
	}
	tests := []struct {
		name          string
		detail        string
		ids           []string
		patient       string
		patients      []string
		detailAfter   string
		firstPatients string
	}{
		{name: "none", ids: nil},
		{name: "shared resources only", ids: []string{"", ""}},
		{name: "one patient", ids: []string{"x", "", "x"}, patient: "x"},
		{name: "three patients", ids: []string{"z", "x", "", "y", "x"}, patients: []string{"x", "y", "z"}},
		{name: "over the bound", detail: "200", ids: many, detailAfter: "200 " + PatientsTruncated + fmt.Sprint(MaxPatients+5)},
		{name: "over the bound, no detail", ids: many, detailAfter: PatientsTruncated + fmt.Sprint(MaxPatients+5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEntry(0)
			e.Patient, e.Patients, e.Detail = "stale", []string{"stale1", "stale2"}, tt.detail
			e.SetPatients(tt.ids)
			if strings.HasPrefix(tt.name, "over the bound") {
				if e.Patient != "" || len(e.Patients) != MaxPatients || e.Patients[0] != "p00000" ||
					e.Patients[MaxPatients-1] != fmt.Sprintf("p%05d", MaxPatients-1) || e.Detail != tt.detailAfter {
					t.Fatalf("patient %q, %d patients from %q, detail %q", e.Patient, len(e.Patients), e.Patients[0], e.Detail)
				}
			} else if e.Patient != tt.patient || !reflect.DeepEqual(e.Patients, tt.patients) || e.Detail != tt.detail {
				t.Fatalf("patient %q, patients %q, detail %q; want %q, %q, %q", e.Patient, e.Patients, e.Detail, tt.patient, tt.patients, tt.detail)
			}
			b, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, b)
			d, _ := DecodeEntry(b)
			if d.Patient != e.Patient || !slices.Equal(d.Patients, e.Patients) {
				t.Fatalf("decoded patient %q, %d patients", d.Patient, len(d.Patients))
			}
		})
	}
}

// An entry with every field at its bound, made of characters that escape
// to six bytes each (as entries written before Encode replaced them hold
// them), and MaxPatients patients fits in MaxEntrySize and decodes.
func TestEncodeWorstCaseFits(t *testing.T) {
	worst := func(n int) string { return strings.Repeat("\x01", n) }
	e := Entry{Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}
	for _, p := range e.stringFields() {
		*p = worst(MaxField)
	}
	e.Detail = worst(MaxField)
	for i := range MaxQuery {
		e.Query = append(e.Query, worst(MaxQueryName-3)+fmt.Sprintf("%03d", i))
	}
	for i := range MaxPatients {
		e.Patients = append(e.Patients, worst(MaxPatientID-4)+fmt.Sprintf("%04d", i))
	}
	for i := range MaxAsked {
		e.Asked = append(e.Asked, worst(MaxPatientID-4)+fmt.Sprintf("%04d", i))
	}
	e.Token = worst(MaxField)
	b, err := e.appendEncoding(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxEntrySize {
		t.Fatalf("worst-case entry is %d bytes, over MaxEntrySize %d", len(b), MaxEntrySize)
	}
	if len(b) < MaxEntrySize/2 {
		t.Fatalf("worst-case entry is only %d bytes: the test does not reach the bounds", len(b))
	}
	roundTrip(t, b)
}

// roundTrip checks the canonical-form properties for an encoding b.
func roundTrip(t *testing.T, b []byte) {
	t.Helper()
	d, err := DecodeEntry(b)
	if err != nil {
		t.Fatalf("DecodeEntry(Encode) failed: %v\n%s", err, b)
	}
	again, err := d.appendEncoding(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("Encode(Decode(b)) != b:\n%s\n%s", again, b)
	}
}

func FuzzEntry(f *testing.F) {
	good, _ := sampleEntry(0).Encode()
	f.Add(string(good), "a\r\nb", int64(0))
	f.Add(`{"v":1}`, "\u2028\xff", int64(1<<40))
	f.Add(strings.Replace(string(good), `"ok"`, `"\u0000\n"`, 1), strings.Repeat("é", 300), int64(-5))
	multi := sampleEntry(0)
	multi.Patients = []string{"b", "a"}
	two, _ := multi.Encode()
	f.Add(string(two), "p", int64(2))
	f.Fuzz(func(t *testing.T, in, field string, nanos int64) {
		// Any accepted input is canonical.
		if e, err := DecodeEntry([]byte(in)); err == nil {
			again, err := e.appendEncoding(nil)
			if err != nil || string(again) != in {
				t.Fatalf("accepted non-canonical input %q (re-encoded %q, %v)", in, again, err)
			}
		}
		// Any encodable entry round-trips and stays bounded and escaped.
		e := sampleEntry(0)
		e.Time = time.Unix(0, nanos)
		e.Actor, e.Detail, e.Query = field, field, []string{field, in}
		if nanos%2 == 0 {
			e.Patients = []string{field, in, field, "p"}
		}
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsAny(b, "\r\n\x00\u2028") || bytes.Contains(b, []byte(`\u`)) {
			t.Fatalf("control or formatting character in %q", b)
		}
		roundTrip(t, b)
		d, _ := DecodeEntry(b)
		if !d.Time.Equal(e.Time) {
			t.Fatalf("time %v came back as %v", e.Time, d.Time)
		}
		if len(Clean(field)) <= MaxField && utf8.ValidString(field) && d.Actor != Clean(field) {
			t.Fatalf("actor %q came back as %q", field, d.Actor)
		}
		if !slices.Equal(d.Patients, CanonicalPatients(e.Patients)) || !slices.IsSorted(d.Patients) || slices.Contains(d.Patients, "") {
			t.Fatalf("patients %q came back as %q", e.Patients, d.Patients)
		}
	})
}
