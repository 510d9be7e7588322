package fhir

import (
	"bytes"
	"strconv"
)

// Issue severities and types used by this package (FHIR IssueSeverity and
// IssueType codes).
const (
	SeverityFatal       = "fatal"
	SeverityError       = "error"
	SeverityWarning     = "warning"
	SeverityInformation = "information"

	CodeInvalid   = "invalid"
	CodeStructure = "structure"
	CodeRequired  = "required"
	CodeValue     = "value"
	CodeTooLong   = "too-long"
	CodeTooCostly = "too-costly"
	CodeNotSupp   = "not-supported"
)

// Issue is one OperationOutcome.issue. Diagnostics names the rule that was
// broken and never contains the offending value.
type Issue struct {
	Severity    string
	Code        string
	Diagnostics string
	Expression  []string
}

// Error reports why a resource was rejected. It lists every problem found.
type Error struct {
	Issues []Issue
}

// Error returns a short summary that names elements, never their values.
func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return "fhir: invalid resource"
	}
	first := e.Issues[0]
	s := "fhir: " + first.Diagnostics
	if len(first.Expression) > 0 {
		s += " at " + first.Expression[0]
	}
	if n := len(e.Issues) - 1; n > 0 {
		s += " (and " + strconv.Itoa(n) + " more)"
	}
	return s
}

// errorf builds a single-issue *Error.
func issueError(code, expr, diag string) *Error {
	return &Error{Issues: []Issue{newIssue(code, expr, diag)}}
}

func newIssue(code, expr, diag string) Issue {
	is := Issue{Severity: SeverityError, Code: code, Diagnostics: diag}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return is
}

// Outcome returns an OperationOutcome resource holding issues, as compact JSON.
// An empty list gives a single informational "all ok" issue, since FHIR
// requires at least one issue.
func Outcome(issues ...Issue) []byte {
	if len(issues) == 0 {
		issues = []Issue{{Severity: SeverityInformation, Code: "informational", Diagnostics: "all ok"}}
	}
	list := make([]any, 0, len(issues))
	for _, is := range issues {
		sev, code := is.Severity, is.Code
		if sev == "" {
			sev = SeverityError
		}
		if code == "" {
			code = "processing"
		}
		o := map[string]any{"severity": sev, "code": code}
		if is.Diagnostics != "" {
			o["diagnostics"] = is.Diagnostics
		}
		if len(is.Expression) > 0 {
			ex := make([]any, len(is.Expression))
			for i, e := range is.Expression {
				ex[i] = e
			}
			o["expression"] = ex
		}
		list = append(list, o)
	}
	r := &Resource{Type: "OperationOutcome", Object: map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        list,
	}}
	return r.Marshal()
}

// pathString renders a decoding path as a FHIRPath-like expression.
func pathString(root string, segs []pathSeg) string {
	var b bytes.Buffer
	b.WriteString(root)
	for _, s := range segs {
		if s.key != "" {
			b.WriteByte('.')
			b.WriteString(safeKey(s.key))
		} else {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// pathSeg is one step of a path: an object member (key) or an array index.
type pathSeg struct {
	key string
	idx int
}

// safeKey renders a member name for an error expression. Names that are not
// plausible FHIR element names ([A-Za-z_][A-Za-z0-9_]*, at most 64 bytes)
// are replaced by "?", so that values put in member names do not reach
// diagnostics; a member name that looks like an element name is shown.
func safeKey(k string) string {
	if len(k) == 0 || len(k) > 64 {
		return "?"
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return "?"
		}
	}
	return k
}
