package fhir

import (
	"strings"
	"testing"
)

func TestCheckXHTML(t *testing.T) {
	div := func(inner string) string { return `<div xmlns="http://www.w3.org/1999/xhtml">` + inner + `</div>` }
	good := []string{
		div(`<p>Generated narrative</p>`),
		div(`<table><tr><td>a</td></tr></table><a href="https://example.org/x">link</a>`),
		div(`<img src="data:image/png;base64,AAAA" alt="x"/>`),
		div(`Text with &amp; and &lt; and &nbsp;`),
		div(`<span style="color:red">styled</span>`),
	}
	for _, s := range good {
		if r := checkXHTML(s); r != "" {
			t.Errorf("%q refused: %s", s, r)
		}
	}
	bad := map[string]string{
		"script":        div(`<script>alert(1)</script>`),
		"event handler": div(`<p onclick="alert(1)">x</p>`),
		"js href":       div(`<a href=" JaVaScRiPt:alert(1)">x</a>`),
		"data html":     div(`<a href="data:text/html,x">x</a>`),
		"doctype xxe":   `<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + div(`<p>&xxe;</p>`),
		"inner doctype": div(`<!DOCTYPE foo><p>x</p>`),
		"pi":            div(`<?php echo 1 ?><p>x</p>`),
		"iframe":        div(`<iframe src="https://evil.example"></iframe>`),
		"object":        div(`<object data="x"></object>`),
		"form":          div(`<form><input/></form>`),
		"style element": div(`<style>body{}</style><p>x</p>`),
		"wrong root":    `<p xmlns="http://www.w3.org/1999/xhtml">x</p>`,
		"no namespace":  `<div><p>x</p></div>`,
		"empty":         div(`  `),
		"not xml":       div(`<p>unclosed`),
		"text outside":  div(`<p>x</p>`) + "trailing",
		"deep":          div(strings.Repeat("<span>", 100) + "x" + strings.Repeat("</span>", 100)),
		"foreign attr":  `<div xmlns="http://www.w3.org/1999/xhtml" xmlns:x="urn:x"><p x:y="1">x</p></div>`,
	}
	for name, s := range bad {
		if r := checkXHTML(s); r == "" {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(r, "alert") || strings.Contains(r, "passwd") {
			t.Errorf("%s: the reason echoes content: %s", name, r)
		}
	}
}

func FuzzCheckXHTML(f *testing.F) {
	f.Add(`<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div>`)
	f.Add(`<div xmlns="http://www.w3.org/1999/xhtml"><!DOCTYPE x><p>&x;</p></div>`)
	f.Fuzz(func(t *testing.T, s string) {
		_ = checkXHTML(s)
	})
}
