package search

import "testing"

// Escape makes any value one literal parameter value: split and
// unescaped as the parser does, it comes back whole.
func TestEscapeRoundTrip(t *testing.T) {
	for _, v := range []string{"Smith", "Smith,Jones", `a\b`, "x|y", "$5", `,|$\`, "", "Ünïcode, ok"} {
		parts := splitEscaped(Escape(v), ',')
		if len(parts) != 1 || unescape(parts[0]) != v {
			t.Errorf("Escape(%q) = %q splits into %q", v, Escape(v), parts)
		}
		if p := splitEscaped(Escape(v), '|'); len(p) != 1 {
			t.Errorf("Escape(%q) splits at '|': %q", v, p)
		}
	}
}
