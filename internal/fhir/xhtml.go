package fhir

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// xhtmlElements are the elements FHIR narrative may use (R4 txt-1: the basic
// formatting elements of HTML 4.0 chapters 7-11 and 15, a and img). Anything
// else, above all script, style sheets, forms, frames, objects and embeds,
// is refused.
var xhtmlElements = map[string]bool{
	"div": true, "p": true, "br": true, "span": true, "hr": true, "pre": true, "blockquote": true, "address": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"b": true, "i": true, "u": true, "s": true, "em": true, "strong": true, "small": true, "big": true, "tt": true,
	"sub": true, "sup": true, "strike": true, "code": true, "kbd": true, "samp": true, "var": true, "cite": true,
	"dfn": true, "abbr": true, "acronym": true, "q": true, "ins": true, "del": true, "bdo": true, "font": true,
	"basefont": true, "center": true,
	"ul": true, "ol": true, "li": true, "dl": true, "dt": true, "dd": true,
	"table": true, "caption": true, "thead": true, "tbody": true, "tfoot": true, "tr": true, "th": true, "td": true,
	"col": true, "colgroup": true,
	"a": true, "img": true,
}

// checkXHTML checks a narrative div: well-formed XML with a div root in the
// XHTML namespace, no DOCTYPE or entity declarations (XXE), no processing
// instructions, only narrative elements, no event handler attributes and
// no script URLs, and some content (R4 txt-1, txt-2). It returns a reason,
// or "" when the narrative is acceptable. The reason names the rule, never
// the content.
func checkXHTML(s string) string {
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	d.Entity = xml.HTMLEntity // named character references only; nothing is fetched
	depth, content := 0, false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "narrative is not well-formed XHTML"
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (t.Name.Local != "div" || t.Name.Space != xhtmlNS) {
				return "narrative must be a div in the XHTML namespace"
			}
			if depth > 0 && depth >= 64 {
				return "narrative is nested too deeply"
			}
			if !xhtmlElements[t.Name.Local] || (t.Name.Space != xhtmlNS && t.Name.Space != "") {
				return "narrative holds an element that is not allowed (txt-1)"
			}
			for _, a := range t.Attr {
				if r := checkXHTMLAttr(a); r != "" {
					return r
				}
			}
			if t.Name.Local == "img" {
				content = true
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && strings.TrimSpace(string(t)) != "" {
				return "narrative has text outside its div"
			}
			content = content || strings.TrimSpace(string(t)) != ""
		case xml.Directive:
			return "narrative holds a DOCTYPE or other declaration"
		case xml.ProcInst:
			return "narrative holds a processing instruction"
		}
	}
	if !content {
		return "narrative has no content (txt-2)"
	}
	return ""
}

func checkXHTMLAttr(a xml.Attr) string {
	name := strings.ToLower(a.Name.Local)
	if strings.HasPrefix(name, "on") {
		return "narrative holds an event handler attribute"
	}
	switch name {
	case "href", "src", "cite", "longdesc", "background":
		v := strings.ToLower(strings.Map(func(r rune) rune {
			if r <= ' ' {
				return -1
			}
			return r
		}, a.Value))
		if strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") ||
			(strings.HasPrefix(v, "data:") && !strings.HasPrefix(v, "data:image/")) {
			return "narrative holds a script URL"
		}
	}
	if a.Name.Space != "" && a.Name.Space != xhtmlNS && a.Name.Space != "xmlns" && a.Name.Space != "http://www.w3.org/XML/1998/namespace" {
		return "narrative holds an attribute from a foreign namespace"
	}
	return ""
}
