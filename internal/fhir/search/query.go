package search

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/fhir"
)

// Limits bound a search query. Zero fields take the defaults.
type Limits struct {
	MaxCount     int // largest page size; a larger _count is capped (default 1000)
	DefaultCount int // page size when _count is absent (default 50)
	MaxClauses   int // search parameter occurrences, _lastUpdated included (default 64)
	MaxValues    int // comma-separated values in one occurrence, and _id values (default 100)
	MaxIncludes  int // _include and _revinclude together (default 16)
	// MaxChain bounds the hops of one chained parameter or _has, nested
	// ones included (default 3): subject:Patient.organization.name is 2.
	MaxChain int
	// Lenient ignores unknown and unsupported parameters instead of
	// rejecting them (FHIR "Prefer: handling=lenient"). Malformed values
	// are rejected either way.
	Lenient bool
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxCount, 1000)
	def(&l.DefaultCount, 50)
	def(&l.MaxClauses, 64)
	def(&l.MaxValues, 100)
	def(&l.MaxIncludes, 16)
	def(&l.MaxChain, 3)
	l.DefaultCount = min(l.DefaultCount, l.MaxCount)
	return l
}

// Query is a parsed, validated FHIR search. Clauses are ANDed; the conditions
// of one clause are ORed.
type Query struct {
	Type    string
	Clauses []Clause
	// IDs is the set of ids that _id allows: the OR of one occurrence's
	// values, intersected across occurrences. HasIDs says _id was given;
	// HasIDs with no IDs matches nothing.
	IDs         []string
	HasIDs      bool
	LastUpdated []Cond // ANDed
	Sort        []Sort
	Count       int // page size, capped at Limits.MaxCount
	Offset      int
	Total       string // "", "none", "estimate", "accurate"
	Include     []Include
	RevInclude  []Include
	// Chains are chained parameters and Has reverse chains (_has): each
	// is ANDed with the clauses. ParseQuery checks their first hop; the
	// caller searches their inner query on its target type (ParseQuery
	// again) and matches the searched type against what that finds.
	Chains []Chain
	Has    []Has
	// Composites are composite parameters and :of-type on identifiers,
	// each ANDed with the clauses (composite.go): the caller finds
	// candidates through the indexed components (Candidates) and keeps
	// those in which one element pairs them (Composite.Matches).
	Composites []Composite
	Summary    string // validated here, applied by the caller (fhir.SummaryMode)
	Elements   string // carried; the caller checks the names (fhir.ElementsOf)
}

// Clause is one occurrence of a search parameter; its values (Any) are ORed.
// Of ref:identifier, Param is the token parameter that indexes ref's
// Reference.identifier values (Code "ref:identifier", always Blind), with
// no modifier.
type Clause struct {
	Param    *Param
	Modifier string // "", "missing", "not", "exact", "contains", "above", "below", or a reference target type
	Any      []Cond
}

// Cond is one search value.
type Cond struct {
	Prefix  string // eq ne gt lt ge le sa eb ap (date, number, quantity); "" means eq
	Missing *bool  // :missing=true|false
	Not     bool   // :not (token)
	// Token "system|code", "|code" (HasSystem, empty System), "code";
	// quantity "number|system|code" (HasSystem when system is not empty).
	System    string
	HasSystem bool
	Code      string
	// Text: string, NormalizeString of the value; uri, the uri; reference,
	// "Type/id", a bare "id" when the type cannot be told, or an absolute URL.
	Text    string
	Exact   string // string :exact, the original text
	RefType string
	// Value is the number of a number or quantity value; Lo and Hi the range
	// implied by its precision: for dates the first and last microsecond (unix
	// seconds), for decimals [Lo, Hi).
	Value  float64
	Lo, Hi float64
}

// Chain is one chained parameter, Param.Key=Value (subject:Patient.name=
// peter): it matches the resources whose reference parameter Param
// points at a resource of one of Targets that the query Key=Value on
// that type selects.
type Chain struct {
	Param   *Param   // a reference parameter of the searched type
	Targets []string // the types Param may point at that have Key's parameter
	Key     string   // the rest of the chain: a parameter of the targets, with its modifier or a further chain
	Value   string   // as given, escapes and all
}

// Has is one reverse chain, _has:Type:Param:Key=Value: it matches the
// resources of the searched type that a resource of Type, selected by
// the query Key=Value on Type, refers to through its parameter Param.
type Has struct {
	Type  string
	Param *Param // a reference parameter of Type that may point at the searched type
	Key   string // a parameter of Type, with its modifier, or a further _has or chain
	Value string
}

// Sort is one _sort key.
type Sort struct {
	Param string // "_id", "_lastUpdated" or a parameter code
	Desc  bool
}

// Include is one _include or _revinclude: SourceType:Param[:TargetType].
type Include struct {
	SourceType, Param, TargetType string
	Iterate                       bool
}

// QueryError is a rejected search query. Its message names the parameter and
// the reason, never the value, so it is safe to return to the client.
type QueryError struct {
	Param  string
	Reason string
}

func (e *QueryError) Error() string { return "search: " + e.Diagnostics() }

// Diagnostics is the message without the package prefix, for an
// OperationOutcome. The parameter's name is quoted and escaped to
// printable ASCII, and cut to 32 bytes: a name the client made up cannot
// bring control characters, bidi overrides or bulk into the answer or a
// log line.
func (e *QueryError) Diagnostics() string {
	return "parameter " + quoteName(e.Param) + ": " + e.Reason
}

func quoteName(p string) string {
	const max = 32
	if len(p) <= max {
		return strconv.QuoteToASCII(p)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return strconv.QuoteToASCII(p[:cut]) + "..."
}

func qerr(param, reason string) *QueryError { return &QueryError{Param: param, Reason: reason} }

// ParseQuery validates a search on resourceType and returns its typed form.
// params are the decoded query parameters; FHIR escapes (\, \| \$ \\) in
// values are honoured. Parameters whose names start with _format or _pretty
// are ignored. Every error is a *QueryError.
func (r *Registry) ParseQuery(resourceType string, params url.Values, lim Limits) (*Query, error) {
	if _, ok := r.byType[resourceType]; !ok {
		return nil, qerr("", "unknown resource type")
	}
	lim = lim.withDefaults()
	q := &Query{Type: resourceType, Count: lim.DefaultCount}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := make(map[string]bool)
	for _, key := range keys {
		if strings.HasPrefix(key, "_format") || strings.HasPrefix(key, "_pretty") {
			continue
		}
		name, mod, _ := strings.Cut(key, ":")
		chained := name == "_has" || strings.Contains(key, ".")
		for _, raw := range params[key] {
			if raw == "" {
				continue // FHIR: a parameter without a value is ignored
			}
			if chained {
				if err := r.parseChain(q, key, raw, lim); err != nil {
					return nil, err
				}
				continue
			}
			if SingleValued(name) {
				if seen[name] {
					return nil, qerr(key, "may appear only once")
				}
				seen[name] = true
			}
			if err := r.parseOne(q, key, name, mod, raw, lim); err != nil {
				return nil, err
			}
		}
	}
	return q, nil
}

func (r *Registry) parseOne(q *Query, key, name, mod, raw string, lim Limits) error {
	noMod := func() error {
		if mod != "" {
			return qerr(key, "modifier not supported")
		}
		return nil
	}
	switch name {
	case "_count", "_offset":
		if err := noMod(); err != nil {
			return err
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return qerr(key, "must be a non-negative integer")
		}
		if name == "_count" {
			q.Count = min(n, lim.MaxCount)
		} else {
			q.Offset = n
		}
		return nil
	case "_total":
		if err := noMod(); err != nil {
			return err
		}
		switch raw {
		case "none", "estimate", "accurate":
			q.Total = raw
			return nil
		}
		return qerr(key, "must be none, estimate or accurate")
	case "_summary":
		if err := noMod(); err != nil {
			return err
		}
		switch raw {
		case "true", "false", "text", "data", "count":
			q.Summary = raw
			return nil
		}
		return qerr(key, "must be true, false, text, data or count")
	case "_elements":
		q.Elements = raw
		return noMod()
	case "_sort":
		if err := noMod(); err != nil {
			return err
		}
		return r.parseSort(q, key, raw, lim)
	case "_include", "_revinclude":
		return r.parseInclude(q, key, name, mod, raw, lim)
	case "_id":
		if err := noMod(); err != nil {
			return err
		}
		return parseIDs(q, key, raw, lim)
	}
	p, ok := r.Param(q.Type, name)
	if !ok || !p.Supported {
		if lim.Lenient {
			return nil
		}
		if !ok {
			return qerr(key, "unknown search parameter")
		}
		return qerr(key, "search parameter not supported: "+p.Reason)
	}
	if err := checkModifier(r, p, mod); err != nil {
		return qerr(key, err.Error())
	}
	if len(q.Clauses)+len(q.LastUpdated)+len(q.Chains)+len(q.Has)+len(q.Composites) >= lim.MaxClauses {
		return qerr(key, "too many search parameters")
	}
	if p.Type == TypeComposite || mod == "of-type" {
		return parseComposite(q, key, p, mod, raw, lim)
	}
	if mod == "identifier" {
		// ref:identifier=[system|]value is a token search of the
		// Reference.identifier values indexed with ref (identifierParam).
		p, mod = p.ident, ""
	}
	if mod == "missing" {
		if raw != "true" && raw != "false" {
			return qerr(key, ":missing must be true or false")
		}
		b := raw == "true"
		q.Clauses = append(q.Clauses, Clause{Param: p, Modifier: mod, Any: []Cond{{Missing: &b}}})
		return nil
	}
	values := splitEscaped(raw, ',')
	if len(values) > lim.MaxValues {
		return qerr(key, "too many values")
	}
	c := Clause{Param: p, Modifier: mod, Any: make([]Cond, 0, len(values))}
	for _, v := range values {
		cond, reason := parseCond(p, mod, v)
		if reason != "" {
			return qerr(key, reason)
		}
		c.Any = append(c.Any, cond)
	}
	if name == "_lastUpdated" {
		if len(c.Any) != 1 {
			return qerr(key, "takes one value per occurrence")
		}
		q.LastUpdated = append(q.LastUpdated, c.Any[0])
		return nil
	}
	q.Clauses = append(q.Clauses, c)
	return nil
}

type modError string

func (e modError) Error() string { return string(e) }

func checkModifier(r *Registry, p *Param, mod string) error {
	switch mod {
	case "", "missing":
		if mod == "missing" && (p.Code == "_lastUpdated" || p.Type == TypeComposite) {
			return modError("modifier not supported")
		}
		return nil
	case "not":
		if p.Type == TypeToken {
			return nil
		}
	case "exact":
		if p.Type == TypeString {
			return nil
		}
	case "contains":
		if p.Type == TypeString && !p.Blind {
			return nil
		}
		if p.Type == TypeString {
			return modError(":contains is not supported on identifying parameters")
		}
	case "above", "below":
		if p.Type == TypeURI {
			return nil
		}
	case "of-type":
		if p.Type == TypeToken && p.Code == "identifier" {
			return nil
		}
	case "identifier":
		if p.Type == TypeReference && p.ident != nil {
			return nil
		}
	default:
		if p.Type == TypeReference && mod[0] >= 'A' && mod[0] <= 'Z' {
			if _, known := r.byType[mod]; known && (len(p.Targets) == 0 || slices.Contains(p.Targets, mod)) {
				return nil
			}
			return modError("reference type modifier is not a target of this parameter")
		}
	}
	return modError("modifier not supported")
}

// parseCond parses one value; reason is non-empty when it is rejected.
func parseCond(p *Param, mod, v string) (c Cond, reason string) {
	switch p.Type {
	case TypeDate, TypeNumber, TypeQuantity:
		if len(v) >= 2 && isLetter(v[0]) {
			switch v[:2] {
			case "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap":
				c.Prefix, v = v[:2], v[2:]
			default:
				return c, "unsupported prefix"
			}
		}
	}
	switch p.Type {
	case TypeToken:
		c.Not = mod == "not"
		parts := splitEscaped(v, '|')
		switch len(parts) {
		case 1:
			c.Code = unescape(parts[0])
		case 2:
			c.System, c.HasSystem, c.Code = unescape(parts[0]), true, unescape(parts[1])
		default:
			return c, "malformed token"
		}
		if c.Code == "" && c.System == "" {
			return c, "malformed token"
		}
	case TypeString:
		s := unescape(v)
		c.Text = NormalizeString(s)
		if mod == "exact" {
			c.Exact = s
		} else if c.Text == "" {
			return c, "empty string value"
		}
	case TypeURI:
		if c.Text = unescape(v); c.Text == "" {
			return c, "empty uri value"
		}
	case TypeReference:
		return parseRefCond(p, mod, unescape(v))
	case TypeDate:
		lo, hi, err := dateRange(v, true)
		if err != nil {
			return c, "malformed date"
		}
		c.Lo, c.Hi = lo, hi
	case TypeNumber:
		val, lo, hi, err := decimalRange(v)
		if err != nil {
			return c, "malformed number"
		}
		c.Value, c.Lo, c.Hi = val, lo, hi
	case TypeQuantity:
		parts := splitEscaped(v, '|')
		if len(parts) != 1 && len(parts) != 3 {
			return c, "malformed quantity"
		}
		val, lo, hi, err := decimalRange(parts[0])
		if err != nil {
			return c, "malformed quantity"
		}
		c.Value, c.Lo, c.Hi = val, lo, hi
		if len(parts) == 3 {
			c.System, c.Code = unescape(parts[1]), unescape(parts[2])
			c.HasSystem = c.System != ""
		}
	default:
		return c, "search parameter not supported"
	}
	return c, ""
}

func parseRefCond(p *Param, mod, v string) (c Cond, reason string) {
	if mod != "" { // type modifier, already checked
		if strings.Contains(v, "/") {
			text, typ := parseReference(v)
			if typ != mod || strings.Contains(v, "://") {
				return c, "reference does not match its type modifier"
			}
			v = text[len(typ)+1:]
		}
		if !validID(v) {
			return c, "malformed reference"
		}
		c.Text, c.RefType = mod+"/"+v, mod
		return c, ""
	}
	if strings.Contains(v, "://") || strings.HasPrefix(v, "urn:") {
		c.Text, c.RefType = parseReference(v)
		return c, ""
	}
	if !strings.Contains(v, "/") {
		if !validID(v) {
			return c, "malformed reference"
		}
		switch targets := p.IDTargets(); len(targets) {
		case 0:
			// A parameter that may point anywhere has no types to try a
			// bare id against: it would match nothing, silently.
			return c, "a bare id needs its type here: Type/id"
		case 1:
			c.Text, c.RefType = targets[0]+"/"+v, targets[0]
		default:
			c.Text = v
		}
		return c, ""
	}
	text, typ := parseReference(v)
	if typ == "" || !validID(text[len(typ)+1:]) {
		return c, "malformed reference"
	}
	if len(p.Targets) > 0 && !slices.Contains(p.Targets, typ) {
		return c, "reference type is not a target of this parameter"
	}
	c.Text, c.RefType = text, typ
	return c, ""
}

// validID reports whether s is a FHIR id (fhir.ValidID: R4's regex, and
// not dots alone).
func validID(s string) bool { return fhir.ValidID(s) }

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func parseIDs(q *Query, key, raw string, lim Limits) error {
	values := splitEscaped(raw, ',')
	if len(values) > lim.MaxValues {
		return qerr(key, "too many values")
	}
	ids := make([]string, 0, len(values))
	for _, v := range values {
		v = unescape(v)
		if !validID(v) {
			return qerr(key, "malformed id")
		}
		if !slices.Contains(ids, v) {
			ids = append(ids, v)
		}
	}
	if q.HasIDs {
		ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(q.IDs, id) })
	}
	q.IDs, q.HasIDs = ids, true
	return nil
}

func (r *Registry) parseSort(q *Query, key, raw string, lim Limits) error {
	for _, item := range strings.Split(raw, ",") {
		s := Sort{Param: item}
		if strings.HasPrefix(item, "-") {
			s.Param, s.Desc = item[1:], true
		}
		switch s.Param {
		case "_id", "_lastUpdated":
		default:
			p, ok := r.Param(q.Type, s.Param)
			if !ok || !p.Supported || p.Type == TypeComposite {
				return qerr(key, "unknown or unsupported sort parameter")
			}
		}
		if slices.ContainsFunc(q.Sort, func(o Sort) bool { return o.Param == s.Param }) {
			return qerr(key, "sort parameter repeated")
		}
		if len(q.Sort) >= lim.MaxClauses {
			return qerr(key, "too many sort parameters")
		}
		q.Sort = append(q.Sort, s)
	}
	return nil
}

func (r *Registry) parseInclude(q *Query, key, name, mod, raw string, lim Limits) error {
	inc := Include{}
	switch mod {
	case "":
	case "iterate", "recurse":
		inc.Iterate = true
	default:
		return qerr(key, "modifier not supported")
	}
	if len(q.Include)+len(q.RevInclude) >= lim.MaxIncludes {
		return qerr(key, "too many includes")
	}
	parts := strings.Split(raw, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return qerr(key, "must be SourceType:parameter[:TargetType]")
	}
	if parts[0] == "*" || parts[1] == "*" {
		return qerr(key, "wildcard includes are not supported")
	}
	inc.SourceType, inc.Param = parts[0], parts[1]
	if len(parts) == 3 {
		inc.TargetType = parts[2]
	}
	p, ok := r.Param(inc.SourceType, inc.Param)
	if !ok || !p.Supported || p.Type != TypeReference {
		return qerr(key, "not a supported reference parameter of the source type")
	}
	if inc.TargetType != "" {
		if _, known := r.byType[inc.TargetType]; !known || (len(p.Targets) > 0 && !slices.Contains(p.Targets, inc.TargetType)) {
			return qerr(key, "target type is not a target of this parameter")
		}
	}
	if name == "_include" {
		if !inc.Iterate && inc.SourceType != q.Type {
			return qerr(key, "source type must be the searched type")
		}
		q.Include = append(q.Include, inc)
		return nil
	}
	if !inc.Iterate && len(p.Targets) > 0 && !slices.Contains(p.Targets, q.Type) {
		return qerr(key, "parameter cannot refer to the searched type")
	}
	q.RevInclude = append(q.RevInclude, inc)
	return nil
}

// splitEscaped splits s at sep characters not escaped with a backslash. The
// parts keep their escapes; see unescape.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Escape is the inverse of the search parameters' escapes: s with each
// ',', '|', '$' and '\' escaped by a backslash, so that a value sent as
// a parameter is one literal value, never a list or a system|code pair.
func Escape(s string) string {
	if !strings.ContainsAny(s, ",|$\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(",|$\\", s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescape resolves the FHIR search escapes \, \| \$ and \\. Any other
// backslash is kept literally.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(",|$\\", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
