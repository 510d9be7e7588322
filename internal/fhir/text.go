package fhir

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// TextProblem says why s is not text Ward accepts, or returns "" when it
// is. The rule is the one Ward applies to every string of a resource, to
// search parameter values and to ids: valid UTF-8 without
//   - C0 control characters other than tab, line feed and carriage return
//     (R4: "Strings SHOULD not contain Unicode character points below 32,
//     except for u0009, u000D and u000A"; XML, FHIR's other format, cannot
//     carry them at all), DEL and C1 controls, which are never text;
//   - the Unicode bidirectional embedding, override and isolate controls
//     (U+202A-U+202E, U+2066-U+2069): they make a value display as
//     something other than what it is (CVE-2021-42574, "Trojan Source");
//     the marks U+200E, U+200F and U+061C stay allowed, since right-to-left
//     names legitimately carry them;
//   - the noncharacters U+FFFE and U+FFFF, which XML excludes too.
//
// The reason never quotes s.
func TextProblem(s string) string {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return "contains the control character U+" + hex4(rune(c))
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return "is not valid UTF-8"
		case r >= 0x80 && r <= 0x9f:
			return "contains the control character U+" + hex4(r)
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return "contains the bidirectional formatting character U+" + hex4(r)
		case r == 0xfffe, r == 0xffff:
			return "contains the noncharacter U+" + hex4(r)
		}
		i += n
	}
	return ""
}

func hex4(r rune) string {
	h := strings.ToUpper(strconv.FormatInt(int64(r), 16))
	for len(h) < 4 {
		h = "0" + h
	}
	return h
}

// maxTextIssues bounds how many strings one resource's text issues name,
// so that a body full of bad strings does not make a huge answer.
const maxTextIssues = 20

// textIssues reports every string in v (a decoded resource, contained
// resources and narrative included) that TextProblem refuses, at most
// maxTextIssues of them. The path of an element is built only for a
// string it refuses: the walk itself allocates nothing.
func textIssues(v any, path string, issues []Issue, found *int) []Issue {
	w := textWalk{issues: issues, found: found}
	w.walk(v, []pathStep{{key: path}})
	return w.issues
}

// pathStep is one step of an element path: a key, or an index into an
// array when key is "".
type pathStep struct {
	key   string
	index int
}

type textWalk struct {
	issues []Issue
	found  *int
}

func (w *textWalk) walk(v any, path []pathStep) {
	switch v := v.(type) {
	case string:
		if reason := TextProblem(v); reason != "" {
			if *w.found < maxTextIssues {
				w.issues = append(w.issues, newIssue(CodeValue, joinPath(path), "the string "+reason))
			}
			*w.found++
		}
	case map[string]any:
		for k, e := range v {
			w.walk(e, append(path, pathStep{key: k}))
		}
	case []any:
		for i, e := range v {
			w.walk(e, append(path, pathStep{index: i}))
		}
	}
}

// joinPath writes a path as FHIRPath: the root, then ".key" and "[i"]".
func joinPath(path []pathStep) string {
	var b strings.Builder
	for i, p := range path {
		switch {
		case i == 0:
			b.WriteString(p.key)
		case p.key != "":
			b.WriteString("." + safeKey(p.key))
		default:
			b.WriteString("[" + strconv.Itoa(p.index) + "]")
		}
	}
	return b.String()
}
