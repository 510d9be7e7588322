package siem

import (
	"bytes"
	"encoding/json"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/secevent"
)

// Format names how an event is written for a SIEM.
type Format string

// The formats.
const (
	// FormatOCSF is one OCSF 1.3 JSON object per event.
	FormatOCSF Format = "ocsf"
	// FormatCEF is one ArcSight CEF:0 line per event.
	FormatCEF Format = "cef"
)

// ocsfVersion is the OCSF schema version the events follow.
const ocsfVersion = "1.3.0"

// ocsfClass is an OCSF class and activity.
type ocsfClass struct {
	uid, category                  int
	name, categoryName, activityNm string
	activity                       int
}

var (
	catIAM      = [2]any{3, "Identity & Access Management"}
	catFindings = [2]any{2, "Findings"}
	catApp      = [2]any{6, "Application Activity"}
)

func class(uid int, name string, cat [2]any, activity int, activityName string) ocsfClass {
	return ocsfClass{uid: uid, name: name, category: cat[0].(int), categoryName: cat[1].(string), activity: activity, activityNm: activityName}
}

// classOf maps a kind to its OCSF class: Authentication (3002) for
// sign-ins and credentials, Authorize Session (3003) for emergency grants,
// API Activity (6003) for refused or emergency requests, Account Change
// (3001) for accounts, clients and containment, Application Lifecycle
// (6002) for a start, Incident Finding (2005) for incidents, and Detection
// Finding (2004) for alerts and faults.
func classOf(e secevent.Event) ocsfClass {
	switch e.Kind {
	case secevent.SignInFailed, secevent.AccountLocked, secevent.ClientThrottled, secevent.TokenInvalid, secevent.CredentialSuspect:
		return class(3002, "Authentication", catIAM, 1, "Logon")
	case secevent.BreakGlassGranted:
		return class(3003, "Authorize Session", catIAM, 1, "Assign Privileges")
	case secevent.AccessDenied, secevent.BreakGlassUsed, secevent.RateLimited:
		return class(6003, "API Activity", catApp, 99, "Other")
	case secevent.AccountChanged, secevent.ClientChanged:
		id, name := accountActivity(e.Attrs[secevent.AttrChange])
		return class(3001, "Account Change", catIAM, id, name)
	case secevent.ContainmentOn:
		return class(3001, "Account Change", catIAM, 5, "Disable")
	case secevent.ContainmentOff:
		return class(3001, "Account Change", catIAM, 2, "Enable")
	case secevent.ConfigLoaded:
		return class(6002, "Application Lifecycle", catApp, 3, "Start")
	case secevent.IncidentChanged:
		return class(2005, "Incident Finding", catFindings, 2, "Update")
	case secevent.AlertChanged:
		return class(2004, "Detection Finding", catFindings, 2, "Update")
	}
	return class(2004, "Detection Finding", catFindings, 1, "Create")
}

// accountActivity maps a change code to Account Change's activity.
func accountActivity(change string) (int, string) {
	switch change {
	case "created":
		return 1, "Create"
	case "enabled":
		return 2, "Enable"
	case "password":
		return 3, "Password Change"
	case "disabled", "revoked":
		return 5, "Disable"
	case "deleted":
		return 6, "Delete"
	case "roles":
		return 7, "Attach Policy"
	case "locked":
		return 9, "Lock"
	case "mfa-enrolled":
		return 10, "MFA Factor Enable"
	case "mfa-removed":
		return 11, "MFA Factor Disable"
	}
	return 99, "Other"
}

// OCSF returns e as one OCSF JSON object (no newline). An invalid event
// is cleaned first (secevent.Clean). Fields: metadata (product Ward,
// uid = the event's id, event_code = its kind), class, category,
// activity and type, severity, time in milliseconds, status, message,
// actor (user.uid, app_uid), src_endpoint.ip, and the attributes under
// unmapped; a finding's finding_info.
func OCSF(e secevent.Event, version string) []byte {
	e, _ = secevent.Clean(e, e.Time)
	c := classOf(e)
	out := map[string]any{
		"metadata": map[string]any{
			"version":    ocsfVersion,
			"product":    map[string]any{"name": "Ward", "vendor_name": "Ward", "version": version},
			"uid":        e.ID,
			"event_code": string(e.Kind),
			"log_name":   "security",
		},
		"class_uid":     c.uid,
		"class_name":    c.name,
		"category_uid":  c.category,
		"category_name": c.categoryName,
		"activity_id":   c.activity,
		"activity_name": c.activityNm,
		"type_uid":      c.uid*100 + c.activity,
		"type_name":     c.name + ": " + c.activityNm,
		"severity_id":   int(e.Severity),
		"severity":      e.Severity.String(),
		"time":          e.Time.UnixMilli(),
		"message":       e.Message,
	}
	switch e.Outcome {
	case secevent.Success:
		out["status_id"], out["status"] = 1, "Success"
	case secevent.Failure:
		out["status_id"], out["status"] = 2, "Failure"
	default:
		out["status_id"], out["status"] = 0, "Unknown"
	}
	actor := map[string]any{}
	if e.Actor != "" {
		actor["user"] = map[string]any{"uid": e.Actor}
		if c.uid == 3002 {
			out["user"] = map[string]any{"uid": e.Actor}
		}
	}
	if e.Client != "" {
		actor["app_uid"] = e.Client
	}
	if len(actor) > 0 {
		out["actor"] = actor
	}
	unmapped := map[string]any{}
	maps.Copy(unmapped, anyMap(e.Attrs))
	if e.Source != "" {
		if ip := sourceIP(e.Source); ip != "" {
			out["src_endpoint"] = map[string]any{"ip": ip}
		} else {
			unmapped["source"] = e.Source
		}
	}
	if c.uid == 2004 || c.uid == 2005 {
		out["finding_info"] = map[string]any{"uid": e.ID, "title": e.Message, "types": []string{string(e.Kind)}}
	}
	if len(unmapped) > 0 {
		out["unmapped"] = unmapped
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out) // maps of strings and numbers always encode; keys sorted
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sourceIP returns the IP address of an address with or without a port.
func sourceIP(s string) string {
	if ip := net.ParseIP(s); ip != nil {
		return ip.String()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			return ip.String()
		}
	}
	return ""
}

// cefSeverity maps OCSF severities onto CEF's 0-10.
func cefSeverity(s secevent.Severity) int {
	switch s {
	case secevent.Informational:
		return 1
	case secevent.Low:
		return 3
	case secevent.Medium:
		return 5
	case secevent.High:
		return 8
	case secevent.Critical:
		return 10
	}
	return 5
}

// CEF returns e as one ArcSight CEF:0 line (no newline):
//
//	CEF:0|Ward|Ward|version|kind|message|severity|extension
//
// Header fields escape \ and |; extension values escape \, = and line
// breaks. Extension keys: rt (ms), externalId (the event's id), suser
// (actor), src (address), outcome, cs1 (client, cs1Label=client), and
// each attribute as ward_<key> (dots as underscores).
func CEF(e secevent.Event, version string) []byte {
	e, _ = secevent.Clean(e, e.Time)
	var b bytes.Buffer
	b.WriteString("CEF:0|Ward|Ward|")
	for _, h := range []string{version, string(e.Kind), e.Message} {
		b.WriteString(cefHeader(h))
		b.WriteByte('|')
	}
	b.WriteString(strconv.Itoa(cefSeverity(e.Severity)))
	b.WriteByte('|')
	ext := [][2]string{{"rt", strconv.FormatInt(e.Time.UnixMilli(), 10)}, {"externalId", e.ID}}
	if e.Actor != "" {
		ext = append(ext, [2]string{"suser", e.Actor})
	}
	if ip := sourceIP(e.Source); ip != "" {
		ext = append(ext, [2]string{"src", ip})
	} else if e.Source != "" {
		ext = append(ext, [2]string{"ward_source", e.Source})
	}
	if e.Outcome != "" {
		ext = append(ext, [2]string{"outcome", string(e.Outcome)})
	}
	if e.Client != "" {
		ext = append(ext, [2]string{"cs1Label", "client"}, [2]string{"cs1", e.Client})
	}
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		ext = append(ext, [2]string{"ward_" + strings.ReplaceAll(k, ".", "_"), e.Attrs[k]})
	}
	for i, kv := range ext {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(cefValue(kv[1]))
	}
	return b.Bytes()
}

var (
	cefHeaderEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\r\n", " ", "\n", " ", "\r", " ")
	cefValueEscaper  = strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\r\n", `\n`, "\n", `\n`, "\r", `\r`)
)

func cefHeader(s string) string { return cefHeaderEscaper.Replace(s) }
func cefValue(s string) string  { return cefValueEscaper.Replace(s) }
