package esign

import (
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// UserSystem is the identifier system of a signer's Ward user id in
// Provenance.signature.who.
const UserSystem = "urn:ward:user"

// TimeFormat is how a signature's time is written: RFC 3339 to the
// microsecond, with its zone (an R4 instant).
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// FormatTime writes t as a statement and a Provenance hold it.
func FormatTime(t time.Time) string { return t.Format(TimeFormat) }

// Provenance returns the R4 Provenance, without id or meta, that holds
// one signature: its target the signed version, its recorded time the
// signing's, its agent and signature.who the signer (user id and printed
// name), signature.type the meaning, signature.data the envelope.
func Provenance(st Statement, envelope []byte) map[string]any {
	m, _ := LookupMeaning(st.Meaning)
	who := func() map[string]any {
		return map[string]any{
			"identifier": map[string]any{"system": UserSystem, "value": st.Signer},
			"display":    st.Name,
		}
	}
	return map[string]any{
		"resourceType": "Provenance",
		"target":       []any{map[string]any{"reference": st.Target}},
		"recorded":     st.Time,
		"agent":        []any{map[string]any{"who": who()}},
		"signature": []any{map[string]any{
			"type":         []any{map[string]any{"system": System, "code": m.Code, "display": m.Display}},
			"when":         st.Time,
			"who":          who(),
			"targetFormat": TargetFormat,
			"sigFormat":    SigFormat,
			"data":         base64.StdEncoding.EncodeToString(envelope),
		}},
	}
}

// Shown is one Ward signature as a Provenance shows it, before it is
// verified.
type Shown struct {
	Target   string // Provenance.target[0].reference
	Meaning  string // signature.type[0].code
	Display  string // signature.type[0].display
	When     string
	Signer   string // signature.who.identifier.value
	Name     string // signature.who.display
	Envelope []byte // signature.data, decoded
}

// ErrNotSigned: a Provenance holds no Ward signature.
var ErrNotSigned = errors.New("esign: the Provenance holds no Ward e-signature")

// Signatures returns the Ward signatures a Provenance (its JSON object)
// holds, as shown.
func Signatures(prov map[string]any) ([]Shown, error) {
	targets, _ := prov["target"].([]any)
	var target string
	if len(targets) == 1 {
		t, _ := targets[0].(map[string]any)
		target, _ = t["reference"].(string)
	}
	var out []Shown
	sigs, _ := prov["signature"].([]any)
	for _, s := range sigs {
		sig, _ := s.(map[string]any)
		if f, _ := sig["sigFormat"].(string); f != SigFormat {
			continue
		}
		sh := Shown{Target: target}
		sh.When, _ = sig["when"].(string)
		if types, _ := sig["type"].([]any); len(types) == 1 {
			c, _ := types[0].(map[string]any)
			if sys, _ := c["system"].(string); sys == System {
				sh.Meaning, _ = c["code"].(string)
				sh.Display, _ = c["display"].(string)
			}
		}
		who, _ := sig["who"].(map[string]any)
		sh.Name, _ = who["display"].(string)
		if id, _ := who["identifier"].(map[string]any); id != nil {
			if sys, _ := id["system"].(string); sys == UserSystem {
				sh.Signer, _ = id["value"].(string)
			}
		}
		data, _ := sig["data"].(string)
		env, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, fmt.Errorf("%w: signature.data is not base64", ErrInvalid)
		}
		sh.Envelope = env
		out = append(out, sh)
	}
	if len(out) == 0 {
		return nil, ErrNotSigned
	}
	return out, nil
}

// Verify opens a shown signature and checks that what the Provenance
// shows is what was signed: target, signer, printed name, meaning (code
// and display) and time.
func (sh Shown) Verify(keys Keys) (Statement, error) {
	st, err := Open(sh.Envelope, keys)
	if err != nil {
		return Statement{}, err
	}
	m, _ := LookupMeaning(st.Meaning)
	for _, f := range []struct{ what, shown, signed string }{
		{"target", sh.Target, st.Target},
		{"signer", sh.Signer, st.Signer},
		{"printed name", sh.Name, st.Name},
		{"meaning", sh.Meaning, st.Meaning},
		{"meaning's display", sh.Display, m.Display},
		{"time", sh.When, st.Time},
	} {
		if f.shown != f.signed {
			return Statement{}, fmt.Errorf("%w: the Provenance shows another %s than was signed", ErrInvalid, f.what)
		}
	}
	return st, nil
}
