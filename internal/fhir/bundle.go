package fhir

import (
	"strconv"
	"strings"
)

// Bundle is the part of a Bundle resource that request processing needs.
type Bundle struct {
	Type    string
	Entries []Entry
}

// Entry is one Bundle.entry. Resource shares its Object with the Bundle's
// tree, so rewriting references in it rewrites the Bundle.
type Entry struct {
	FullURL  string
	Resource *Resource // nil when the entry has no resource
	Request  *Request  // nil when the entry has no request
}

// Request is Bundle.entry.request.
type Request struct {
	Method, URL, IfMatch, IfNoneMatch, IfNoneExist, IfModifiedSince string
}

// ParseBundle reads the entries of a Bundle resource. It returns an *Error
// listing every problem: a link relation given twice, an entry that is not an object, a resource
// without a known resourceType, a fullUrl that is not absolute, and, in
// "transaction" and "batch" bundles, a missing request, a method other than
// GET, HEAD, POST, PUT, DELETE or PATCH, a missing url, or a POST or PUT
// without a resource. It does not validate the resources themselves
// (Validator.Validate does).
func ParseBundle(r *Resource) (*Bundle, error) {
	b, issues := readBundle(r.Object, r.Type, r.Type)
	if len(issues) > 0 {
		return nil, &Error{Issues: issues}
	}
	return b, nil
}

func readBundle(obj map[string]any, typ, path string) (*Bundle, []Issue) {
	if typ != "Bundle" {
		return nil, []Issue{newIssue(CodeInvalid, path+".resourceType", "not a Bundle")}
	}
	var issues []Issue
	b := &Bundle{}
	bt, ok := obj["type"].(string)
	if !ok {
		issues = append(issues, newIssue(CodeRequired, path+".type", "Bundle.type is required"))
	}
	b.Type = bt
	needRequest := bt == "transaction" || bt == "batch"
	issues = linkIssues(obj, path, issues)
	raw, ok := obj["entry"]
	if !ok {
		return b, issues
	}
	list, ok := raw.([]any)
	if !ok {
		return b, append(issues, newIssue(CodeStructure, path+".entry", "entry must be an array"))
	}
	b.Entries = make([]Entry, 0, len(list))
	for i, e := range list {
		ep := path + ".entry[" + strconv.Itoa(i) + "]"
		eo, ok := e.(map[string]any)
		if !ok {
			issues = append(issues, newIssue(CodeStructure, ep, "entry must be an object"))
			continue
		}
		var entry Entry
		if fu, ok := eo["fullUrl"]; ok {
			s, ok := fu.(string)
			if !ok || !absoluteReference(s) {
				issues = append(issues, newIssue(CodeInvalid, ep+".fullUrl", "fullUrl must be an absolute URL or urn:uuid/urn:oid"))
			}
			entry.FullURL = s
		}
		if res, ok := eo["resource"]; ok {
			ro, ok := res.(map[string]any)
			rt, _ := ro["resourceType"].(string)
			if !ok || !IsResourceType(rt) {
				issues = append(issues, newIssue(CodeInvalid, ep+".resource.resourceType", "entry resource needs a known resourceType"))
			} else {
				id, _ := ro["id"].(string)
				entry.Resource = &Resource{Type: rt, ID: id, Object: ro}
			}
		}
		if req, ok := eo["request"]; ok {
			entry.Request, issues = readRequest(req, ep+".request", issues)
		}
		if needRequest {
			switch {
			case entry.Request == nil:
				if _, present := eo["request"]; !present {
					issues = append(issues, newIssue(CodeRequired, ep+".request", "each "+bt+" entry needs a request"))
				}
			case (entry.Request.Method == "POST" || entry.Request.Method == "PUT") && entry.Resource == nil:
				if _, present := eo["resource"]; !present {
					issues = append(issues, newIssue(CodeRequired, ep+".resource", "a "+entry.Request.Method+" entry needs a resource"))
				}
			}
		}
		b.Entries = append(b.Entries, entry)
	}
	return b, issues
}

func readRequest(v any, path string, issues []Issue) (*Request, []Issue) {
	o, ok := v.(map[string]any)
	if !ok {
		return nil, append(issues, newIssue(CodeStructure, path, "request must be an object"))
	}
	str := func(k string) string {
		s, ok := o[k].(string)
		if _, present := o[k]; present && !ok {
			issues = append(issues, newIssue(CodeStructure, path+"."+k, "must be a string"))
		}
		return s
	}
	req := &Request{
		Method:          str("method"),
		URL:             str("url"),
		IfMatch:         str("ifMatch"),
		IfNoneMatch:     str("ifNoneMatch"),
		IfNoneExist:     str("ifNoneExist"),
		IfModifiedSince: str("ifModifiedSince"),
	}
	switch req.Method {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH":
	default:
		issues = append(issues, newIssue(CodeValue, path+".method", "method must be GET, HEAD, POST, PUT, DELETE or PATCH"))
	}
	if req.URL == "" {
		issues = append(issues, newIssue(CodeRequired, path+".url", "request url is required"))
	}
	return req, issues
}

// absoluteReference reports whether s is an absolute URL, urn:uuid or urn:oid.
func absoluteReference(s string) bool {
	switch {
	case strings.HasPrefix(s, "urn:uuid:"):
		return validUUID(s[len("urn:uuid:"):])
	case strings.HasPrefix(s, "urn:oid:"):
		return validOID(s[len("urn:oid:"):])
	case strings.Contains(s, "://"):
		return validAbsoluteURL(s)
	}
	return false
}

// linkIssues reports a Bundle.link relation that occurs more than once
// (a Bundle has one "self", one "next", and so on).
func linkIssues(obj map[string]any, path string, issues []Issue) []Issue {
	links, _ := obj["link"].([]any)
	seen := make(map[string]bool, len(links))
	for i, l := range links {
		lo, _ := l.(map[string]any)
		rel, ok := lo["relation"].(string)
		if !ok {
			continue
		}
		if seen[rel] {
			issues = append(issues, newIssue(CodeInvalid, path+".link["+strconv.Itoa(i)+"].relation", "link relation occurs more than once"))
		}
		seen[rel] = true
	}
	return issues
}
