package fhir

import (
	"slices"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir/fhirpath"
)

// Validator checks resources against the R4 JSON schema and the rules in
// Validate. A Validator is safe for concurrent use.
type Validator struct {
	types       typeModel
	defs        map[string]*defType
	model       *specModel
	fpModel     *fhirpathModel
	constraints *constraintSet

	// schemaPass, when set, replaces the walker's schema checks: it appends
	// the schema's issues for the resource obj of type typ at path. Only
	// tests set it, to compare the walker with a JSON-schema library.
	schemaPass func(obj map[string]any, typ, path string, issues []Issue) []Issue
}

// NewValidator loads the embedded R4 JSON schema and StructureDefinitions.
func NewValidator() (*Validator, error) {
	root, err := loadSchema()
	if err != nil {
		return nil, err
	}
	types, defs, err := buildTypeModel(root)
	if err != nil {
		return nil, err
	}
	model, err := loadSpecModel()
	if err != nil {
		return nil, err
	}
	return &Validator{
		types:       types,
		defs:        defs,
		model:       model,
		fpModel:     newFHIRPathModel(model),
		constraints: compileConstraints(model),
	}, nil
}

// Element returns the declared type of element name of the resource,
// data type or backbone element def ("Observation", "HumanName",
// "Observation_Component"): the definition it refers to ("string",
// "CodeableConcept"; "" for a code with an inline value set or an inlined
// primitive), and whether it repeats. ok is false for an unknown element.
// A choice element is known under each of its typed names (valueString).
func (v *Validator) Element(def, name string) (typ string, repeats, ok bool) {
	pt, ok := v.types[def][name]
	return pt.def, pt.array, ok
}

// Codes returns the codes allowed for a code element name of the schema
// definition def ("ClaimResponse", "ClaimResponse_Item") by its required
// binding, sorted; nil for an element without a checked required binding.
func (v *Validator) Codes(def, name string) []string {
	if enum := v.types[def][name].enum; len(enum) > 0 {
		return enum
	}
	parts := strings.Split(def, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToLower(parts[i][:1]) + parts[i][1:]
	}
	t := v.model.Types[strings.Join(parts, ".")]
	if t == nil {
		return nil
	}
	for _, el := range t.Elements {
		if el.Name != name || el.Binding == "" {
			continue
		}
		var codes []string
		for _, list := range v.model.ValueSets[el.Binding] {
			codes = append(codes, list...)
		}
		slices.Sort(codes)
		return codes
	}
	return nil
}

// Validate checks r and returns an *Error listing every problem found:
//   - R4 JSON schema violations (unknown elements, missing required
//     elements, wrong JSON types, values not matching a primitive type's
//     format, codes outside required bindings the schema encodes as
//     enums), with the element's path;
//   - empty objects and arrays (FHIR JSON forbids them);
//   - calendar validity of date, dateTime and instant values (Feb 30);
//   - Reference.reference format: "Type/id", "Type/id/_history/v", an
//     absolute URL, "urn:uuid:<uuid>", "urn:oid:<oid>", a conditional
//     "Type?query", or a local "#id" that names a contained resource;
//   - every contained resource (and every Bundle entry and Parameters
//     resource) against its own type, and that contained resources do not
//     themselves contain resources;
//   - every string, narrative included, against TextProblem (control
//     characters, bidirectional overrides), and every id against ValidID
//     (no id made of dots alone).
//
// It returns nil when r is valid.
func (v *Validator) Validate(r *Resource) error {
	if r == nil || r.Object == nil {
		return issueError(CodeRequired, "", "no resource")
	}
	issues, _ := v.validate(r)
	if len(issues) == 0 {
		return nil
	}
	issues = dedupeIssues(issues)
	slices.SortStableFunc(issues, func(a, b Issue) int {
		return strings.Compare(strings.Join(a.Expression, ","), strings.Join(b.Expression, ","))
	})
	return &Error{Issues: issues}
}

// validate returns r's issues and the constraints whose evaluation failed.
func (v *Validator) validate(r *Resource) ([]Issue, []string) {
	var issues, evalErrs = v.validateResource(r.Object, r.Type, r.Type, nil, nil, nil, nil)
	issues = textIssues(r.Object, r.Type, issues, new(int))
	return issues, evalErrs
}

// validateResource validates one (possibly nested) resource at path.
// localIDs are the ids a "#id" reference may name; container is the
// resource that contains this one (nil unless it is contained).
func (v *Validator) validateResource(obj map[string]any, typ, path string, localIDs map[string]bool, container *fhirpath.Node, issues []Issue, evalErrs []string) ([]Issue, []string) {
	inContained := container != nil
	if !IsResourceType(typ) {
		return append(issues, newIssue(CodeNotSupp, path+".resourceType", "unknown resource type")), evalErrs
	}
	if _, ok := v.types[typ]; !ok {
		return append(issues, newIssue("exception", path, "schema unavailable")), evalErrs
	}
	if !inContained {
		localIDs = containedIDs(obj)
	}
	res := fhirpath.NewResource(obj, path)
	w := walker{v: v, localIDs: localIDs, inContained: inContained, self: res, evalErrs: evalErrs}
	w.object(obj, typ, path, v.schemaPass == nil)
	// Issues keep the order of the checks: the schema's, the Bundle's, the
	// walker's (nested resources included), then the StructureDefinitions'.
	if v.schemaPass != nil {
		issues = v.schemaPass(obj, typ, path, issues)
	}
	issues = append(issues, w.schema...)
	if typ == "Bundle" {
		_, bi := readBundle(obj, typ, path)
		issues = append(issues, bi...)
	}
	if _, ok := obj["contained"]; ok && inContained {
		issues = append(issues, newIssue(CodeStructure, path+".contained", "a contained resource must not contain resources"))
	}
	issues = append(issues, w.issues...)
	sw := specWalker{m: v.model, cs: v.constraints, root: path, issues: issues, evalErrors: w.evalErrs,
		env: &fhirpath.Env{Model: v.fpModel, Resource: res, RootResource: container, MaxSteps: constraintSteps, Spent: new(int)}}
	sw.object(obj, typ, typ, nil)
	return sw.issues, sw.evalErrors
}

func containedIDs(obj map[string]any) map[string]bool {
	list, _ := obj["contained"].([]any)
	ids := make(map[string]bool, len(list))
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			if id, ok := m["id"].(string); ok {
				ids[id] = true
			}
		}
	}
	return ids
}

// walker walks a resource guided by the type model. It makes the schema's
// checks (elements, JSON types, required elements, patterns, codes) and
// those the schema cannot express.
type walker struct {
	v           *Validator
	localIDs    map[string]bool
	inContained bool
	self        *fhirpath.Node // the resource walked
	schema      []Issue        // the schema's issues
	issues      []Issue        // the other issues, nested resources' included
	evalErrs    []string
}

func (w *walker) add(code, path, diag string) {
	w.issues = append(w.issues, newIssue(code, path, diag))
}

func (w *walker) addSchema(code, path, diag string) {
	w.schema = append(w.schema, newIssue(code, path, diag))
}

// object walks obj, an instance of definition def. strict is false below
// a value of the wrong JSON type, where the schema checks nothing more;
// the other checks still apply there.
func (w *walker) object(obj map[string]any, def, path string, strict bool) {
	props := w.v.types[def]
	if dt := w.v.defs[def]; strict && dt != nil {
		for _, name := range dt.required {
			if _, ok := obj[name]; !ok {
				w.addSchema(CodeRequired, path+"."+safeKey(name), "missing required element")
			}
		}
	}
	if len(obj) == 0 {
		w.add(CodeStructure, path, "an object must not be empty")
		return
	}
	for k, val := range obj {
		pt, ok := props[k]
		if !ok {
			if strict {
				w.addSchema(CodeStructure, path+"."+safeKey(k), "unknown element")
			}
			continue
		}
		p := path + "." + k
		arr, isArr := val.([]any)
		if !isArr {
			// A singleton, or a repeating element given a single value.
			typed := false
			switch {
			case strict && pt.array:
				w.addSchema(CodeStructure, p, typeMismatch(jsonArray, typeOfJSON(val)))
			case strict:
				typed = w.checkItem(val, pt, p)
			}
			w.value(val, pt.def, p, k == "contained", typed)
			continue
		}
		if strict && !pt.array {
			w.checkItem(val, pt, p) // reports the array as a wrong value
		}
		if len(arr) == 0 {
			w.add(CodeStructure, p, "an array must not be empty")
			continue
		}
		for i, e := range arr {
			ep := p + "[" + strconv.Itoa(i) + "]"
			typed := strict && pt.array && w.checkItem(e, pt, ep)
			w.value(e, pt.def, ep, k == "contained", typed)
		}
	}
}

// checkItem makes the schema's checks of element pt on val, one value of
// the element (an item, when it repeats), and reports whether val has the
// JSON type the schema expects, so that its members are checked in turn.
func (w *walker) checkItem(val any, pt propType, path string) bool {
	if dt := pt.ref; dt != nil {
		if got := typeOfJSON(val); dt.types != 0 && dt.types&got == 0 {
			w.addSchema(CodeStructure, path, typeMismatch(dt.types, got))
			return false
		}
		if s, ok := val.(string); ok && dt.pattern != nil && !dt.pattern(s) {
			w.addSchema(CodeValue, path, "invalid "+safeKey(pt.def)+" value")
		}
		return true
	}
	if got := typeOfJSON(val); pt.types != 0 && pt.types&got == 0 {
		w.addSchema(CodeStructure, path, typeMismatch(pt.types, got))
		return false
	}
	s, isString := val.(string)
	if pt.hasConst && (!isString || s != pt.konst) {
		w.addSchema(CodeValue, path, "value is not the one required here")
	}
	if pt.enum != nil && (!isString || !slices.Contains(pt.enum, s)) {
		w.addSchema(CodeValue, path, "value is not one of the allowed codes")
	}
	if isString && pt.pattern != nil && !pt.pattern(s) {
		w.addSchema(CodeValue, path, "invalid "+safeKey(pt.owner)+" value")
	}
	return true
}

// value walks val, a value of definition def. strict is as for object.
func (w *walker) value(val any, def, path string, contained, strict bool) {
	switch val := val.(type) {
	case map[string]any:
		switch def {
		case "ResourceList":
			typ, ok := val["resourceType"].(string)
			if !ok {
				w.add(CodeRequired, path+".resourceType", "a resource needs a resourceType")
				return
			}
			if contained {
				w.issues, w.evalErrs = w.v.validateResource(val, typ, path, w.localIDs, w.self, w.issues, w.evalErrs)
			} else {
				// Bundle entries and Parameters resources stand alone.
				w.issues, w.evalErrs = w.v.validateResource(val, typ, path, nil, nil, w.issues, w.evalErrs)
			}
			return
		case "Reference":
			if s, ok := val["reference"].(string); ok && !w.validReference(s) {
				w.add(CodeValue, path+".reference", "malformed reference")
			}
		}
		if _, ok := w.v.types[def]; ok {
			w.object(val, def, path, strict)
		}
	case string:
		switch def {
		case "xhtml":
			if reason := checkXHTML(val); reason != "" {
				w.add(CodeValue, path, reason)
			}
		case "date", "dateTime", "instant":
			if !validCalendarDate(val) {
				w.add(CodeValue, path, "not a valid calendar "+def)
			}
		case "id":
			// The schema's pattern checks the characters and the length;
			// ValidID also refuses ids made of dots alone.
			if !ValidID(val) {
				w.add(CodeValue, path, "invalid id value")
			}
		}
	}
}

// validReference reports whether s is an acceptable Reference.reference.
func (w *walker) validReference(s string) bool {
	switch {
	case strings.HasPrefix(s, "#"):
		if s == "#" {
			return w.inContained
		}
		return w.localIDs[s[1:]]
	case strings.HasPrefix(s, "urn:uuid:"), strings.HasPrefix(s, "urn:oid:"), strings.Contains(s, "://"):
		return absoluteReference(s)
	}
	if i := strings.IndexByte(s, '?'); i > 0 {
		return IsResourceType(s[:i]) && !strings.ContainsAny(s, " \t\r\n")
	}
	_, _, _, ok := parseRelative(s)
	return ok
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func validOID(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '2' {
		return false
	}
	prevDot := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
		case c >= '0' && c <= '9':
			prevDot = false
		default:
			return false
		}
	}
	return !prevDot
}

func validAbsoluteURL(s string) bool {
	i := strings.Index(s, "://")
	return validScheme(s[:i]) && len(s) > i+3 && !strings.ContainsAny(s, " \t\r\n")
}

// validCalendarDate checks the day of month of a date, dateTime or instant
// whose syntax the schema has already checked. Values too malformed to read
// are left to the schema.
func validCalendarDate(s string) bool {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return true // year or year-month only, or malformed (schema reports)
	}
	year, err1 := strconv.Atoi(s[0:4])
	month, err2 := strconv.Atoi(s[5:7])
	day, err3 := strconv.Atoi(s[8:10])
	if err1 != nil || err2 != nil || err3 != nil || month < 1 || month > 12 || day < 1 || day > 31 {
		return true
	}
	return day <= daysIn(month, year)
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func dedupeIssues(issues []Issue) []Issue {
	type key struct{ expr, diag string }
	seen := make(map[key]bool, len(issues))
	out := issues[:0]
	for _, is := range issues {
		k := key{diag: is.Diagnostics}
		if len(is.Expression) > 0 {
			k.expr = is.Expression[0]
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, is)
		}
	}
	return out
}
