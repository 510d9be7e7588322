package records

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// AuditEvent resources are a read-only view of the ledger: each entry is
// an AuditEvent whose id is its ledger index. Nothing can write one.

// auditScan bounds how many of the newest entries a search without a
// patient reads; a search by patient uses the ledger's patient index.
const auditScan = 10000

// decideAudit decides an AuditEvent read or search. The ledger view has no
// compartment filter yet, so a compartment-bound grant is refused rather
// than shown other patients' entries.
func (s *Service) decideAudit(sub policy.Subject, action policy.Action) error {
	d, err := s.decide(sub, action, "AuditEvent")
	if err == nil && d.Restricted() {
		err = errNoCompartmentView("AuditEvent")
	}
	return err
}

// AuditEvent reads the ledger entry with index id as an AuditEvent. The
// read is recorded, naming the patient the entry read names.
func (s *Service) AuditEvent(ctx context.Context, c Caller, id string) (Entry, error) {
	e, err := s.auditEvent(ctx, c, id)
	return answer(e, s.account(ctx, c, err, access{action: "read", typ: "AuditEvent", id: id, version: versionOf(e), patient: e.Compartment}))
}

func (s *Service) auditEvent(ctx context.Context, c Caller, id string) (Entry, error) {
	if err := s.decideAudit(c.Subject, policy.ActionRead); err != nil {
		return Entry{}, err
	}
	idx, err := strconv.ParseInt(id, 10, 64)
	if err != nil || idx < 0 {
		return Entry{}, ErrNotFound
	}
	rows, err := s.store.LedgerEntries(ctx, idx, idx+1)
	if err != nil {
		return Entry{}, storeErr(err)
	}
	if len(rows) != 1 {
		return Entry{}, ErrNotFound
	}
	return auditEventEntry(rows[0])
}

// AuditEvents searches the ledger: by patient (indexed; an entry naming
// several patients, such as a search over many, is found under each),
// date, agent (client id), action (C, R, U, D, E), entity ("Type/id"),
// outcome (0, 4, 8, 12), newest first, with _count and _offset. Without a
// patient only the newest 10,000 entries are searched.
// The search is recorded, whatever its outcome.
func (s *Service) AuditEvents(ctx context.Context, c Caller, params url.Values) (SearchResult, error) {
	res, err := s.auditEvents(ctx, c, params)
	return answer(res, s.account(ctx, c, err, access{action: "search", typ: "AuditEvent", query: c.Query}))
}

func (s *Service) auditEvents(ctx context.Context, c Caller, params url.Values) (SearchResult, error) {
	if err := s.decideAudit(c.Subject, policy.ActionSearch); err != nil {
		return SearchResult{}, err
	}
	f, err := parseAuditQuery(params, s.defaultCount(), s.maxCount())
	if err != nil {
		return SearchResult{}, err
	}
	var rows []store.LedgerEntry
	if f.patient != "" {
		rows, err = s.store.LedgerEntriesByPatient(ctx, f.patient, f.since, f.before, 0, auditScan)
	} else {
		var size int64
		size, err = s.store.LedgerSize(ctx)
		if err == nil {
			rows, err = s.store.LedgerEntries(ctx, max(0, size-auditScan), size)
		}
	}
	if err != nil {
		return SearchResult{}, storeErr(err)
	}
	var matches []Entry
	for i := len(rows) - 1; i >= 0; i-- {
		e, err := ledger.DecodeEntry(rows[i].Entry)
		if err != nil || !f.match(e) {
			continue
		}
		ae, err := auditEventEntry(rows[i])
		if err != nil {
			return SearchResult{}, err
		}
		matches = append(matches, ae)
	}
	res := SearchResult{Total: len(matches), HasTotal: true, Offset: f.offset, Count: f.count}
	if f.offset < len(matches) {
		end := min(len(matches), f.offset+f.count)
		res.Matches, res.More = matches[f.offset:end], end < len(matches)
	}
	return res, nil
}

type auditFilter struct {
	patient, agent, action, entity, outcome string
	since, before                           time.Time
	count, offset                           int
}

func parseAuditQuery(params url.Values, defaultCount, maxCount int) (auditFilter, error) {
	f := auditFilter{count: defaultCount}
	for k, vs := range params {
		if len(vs) != 1 && k != "date" {
			// Two patients, agents or entities would have to hold at once:
			// refused, never answered for the first alone.
			return f, fmt.Errorf("%w: %w", ErrInvalid, &search.QueryError{Param: k, Reason: "may appear only once"})
		}
		v := vs[0]
		switch k {
		case "patient":
			f.patient = strings.TrimPrefix(v, "Patient/")
		case "agent":
			f.agent = v
		case "action":
			f.action = v
		case "entity":
			f.entity = v
		case "outcome":
			f.outcome = v
		case "date":
			for _, d := range vs {
				if err := f.addDate(d); err != nil {
					return f, err
				}
			}
		case "_count", "_offset":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return f, invalid("%s must be a non-negative integer", k)
			}
			if k == "_count" {
				f.count = min(n, maxCount)
			} else {
				f.offset = n
			}
		case "_format", "_pretty":
		default:
			return f, fmt.Errorf("%w: %w", ErrInvalid, &search.QueryError{Param: k, Reason: "not supported by AuditEvent search"})
		}
	}
	return f, nil
}

// addDate reads one date bound: geYYYY-MM-DD[Thh:mm:ssZ] or le/lt/gt.
func (f *auditFilter) addDate(v string) error {
	prefix, rest := "", v
	if len(v) > 2 && strings.Contains("gelegtlt", v[:2]) && v[0] >= 'a' {
		prefix, rest = v[:2], v[2:]
	}
	var t time.Time
	var err error
	if len(rest) == len("2006-01-02") {
		t, err = time.Parse("2006-01-02", rest)
	} else {
		t, err = time.Parse(time.RFC3339Nano, rest)
	}
	if err != nil {
		return invalid("date must be a date or an instant with a time zone, with a ge, gt, le or lt prefix")
	}
	switch prefix {
	case "ge", "gt":
		f.since = t
	case "le", "lt":
		f.before = t
		if len(rest) == len("2006-01-02") && prefix == "le" {
			f.before = t.AddDate(0, 0, 1)
		}
	default:
		return invalid("date needs a ge, gt, le or lt prefix")
	}
	return nil
}

func (f auditFilter) match(e ledger.Entry) bool {
	switch {
	case f.agent != "" && e.Client != f.agent && e.Actor != f.agent:
		return false
	case f.action != "" && crudOf(e.Action) != f.action:
		return false
	case f.entity != "" && e.ResourceType+"/"+e.ResourceID != f.entity:
		return false
	case f.outcome != "" && outcomeCode(e.Outcome) != f.outcome:
		return false
	case !f.since.IsZero() && e.Time.Before(f.since):
		return false
	case !f.before.IsZero() && !e.Time.Before(f.before):
		return false
	}
	return true
}

func crudOf(action string) string {
	switch action {
	case "create":
		return "C"
	case "read", "vread", "search", "history", "everything", "ledger-checkpoint", "ledger-entries", "ledger-proof":
		return "R"
	case "update", "patch":
		return "U"
	case "delete":
		return "D"
	}
	return "E"
}

func outcomeCode(o string) string {
	switch o {
	case "success", "no-change":
		return "0"
	case "error":
		return "8"
	}
	return "4"
}

var restfulInteraction = map[string]string{
	"read": "read", "vread": "vread", "create": "create", "update": "update", "patch": "patch", "delete": "delete",
	"search": "search-type", "history": "history-instance", "transaction": "transaction", "batch": "batch",
	"everything": "operation",
}

// auditEventEntry renders one ledger entry as an AuditEvent resource.
func auditEventEntry(row store.LedgerEntry) (Entry, error) {
	e, err := ledger.DecodeEntry(row.Entry)
	if err != nil {
		return Entry{}, err
	}
	return auditEventOf(row.Index, e, nil)
}

// auditEventOf renders entry e, at index, as an AuditEvent resource; add,
// when not nil, adds to it before it is encoded.
func auditEventOf(index int64, e ledger.Entry, add func(ae map[string]any)) (Entry, error) {
	row := store.LedgerEntry{Index: index}
	id := strconv.FormatInt(row.Index, 10)
	ae := map[string]any{
		"resourceType": "AuditEvent",
		"id":           id,
		"type":         map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
		"action":       crudOf(e.Action),
		"recorded":     e.Time.UTC().Format(time.RFC3339Nano),
		"outcome":      outcomeCode(e.Outcome),
		"outcomeDesc":  e.Outcome,
		"agent": []any{map[string]any{
			"who":       map[string]any{"identifier": map[string]any{"system": "urn:ward:client", "value": e.Client}},
			"requestor": true,
			"network":   map[string]any{"address": e.Source, "type": "2"},
		}},
		"source": map[string]any{"observer": map[string]any{"display": "Ward"}},
	}
	if code, ok := restfulInteraction[e.Action]; ok {
		ae["subtype"] = []any{map[string]any{"system": "http://hl7.org/fhir/restful-interaction", "code": code}}
	} else {
		ae["subtype"] = []any{map[string]any{"system": "urn:ward:action", "code": e.Action}}
	}
	var entities []any
	if e.ResourceType != "" && e.ResourceID != "" {
		ref := e.ResourceType + "/" + e.ResourceID
		if e.Version != "" {
			ref += "/_history/" + e.Version
		}
		entities = append(entities, map[string]any{"what": map[string]any{"reference": ref}})
	}
	// One Person entity per patient whose data the access touched: the
	// entry's one patient, or each of several (a search over many).
	for _, p := range append([]string{e.Patient}, e.Patients...) {
		if p == "" {
			continue
		}
		entities = append(entities, map[string]any{
			"what": map[string]any{"reference": "Patient/" + p},
			"type": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
		})
	}
	if len(e.Query) > 0 {
		entities = append(entities, map[string]any{"description": "query parameters: " + strings.Join(e.Query, ",")})
	}
	if len(entities) > 0 {
		ae["entity"] = entities
	}
	if e.Actor != "" && e.Actor != e.Client {
		// A person acted through the client: both are agents, the person
		// the requestor.
		agents := ae["agent"].([]any)
		agents[0].(map[string]any)["requestor"] = false
		ae["agent"] = append([]any{map[string]any{
			"who":       map[string]any{"identifier": map[string]any{"system": "urn:ward:user", "value": e.Actor}},
			"requestor": true,
		}}, agents...)
	}
	if e.Purpose != "" {
		ae["purposeOfEvent"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": e.Purpose}}}}
	}
	if add != nil {
		add(ae)
	}
	body, err := json.Marshal(ae)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: e.Time, Body: body, Compartment: e.Patient}, nil
}
