package federation

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/policy"
)

func validIssuer() Issuer {
	return Issuer{
		URL:       "https://idp.example/realms/staff",
		Audiences: []string{"https://ward.example/fhir"},
		Roles:     []RoleRule{{Role: "practitioner"}},
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := New(Config{Issuers: []Issuer{validIssuer()}}); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for _, c := range []struct {
		name string
		mut  func(*Config)
	}{
		{"no issuers", func(c *Config) { c.Issuers = nil }},
		{"http issuer", func(c *Config) { c.Issuers[0].URL = "http://idp.example" }},
		{"issuer with query", func(c *Config) { c.Issuers[0].URL = "https://idp.example/?x=1" }},
		{"issuer with fragment", func(c *Config) { c.Issuers[0].URL = "https://idp.example/#x" }},
		{"issuer with user info", func(c *Config) { c.Issuers[0].URL = "https://u:p@idp.example/" }},
		{"issuer on link-local", func(c *Config) { c.Issuers[0].URL = "https://169.254.169.254/" }},
		{"issuer on a private address", func(c *Config) { c.Issuers[0].URL = "https://10.0.0.1/" }},
		{"issuer twice", func(c *Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) }},
		{"alg none", func(c *Config) { c.Issuers[0].Algorithms = []string{"none"} }},
		{"alg HS256", func(c *Config) { c.Issuers[0].Algorithms = []string{"RS256", "HS256"} }},
		{"no audience and no client id", func(c *Config) { c.Issuers[0].Audiences = nil }},
		{"client id among audiences", func(c *Config) { c.Issuers[0].ClientID = "https://ward.example/fhir" }},
		{"http JWKS URL", func(c *Config) { c.Issuers[0].JWKSURL = "http://idp.example/jwks" }},
		{"no role rules", func(c *Config) { c.Issuers[0].Roles = nil }},
		{"fixed role not last", func(c *Config) {
			c.Issuers[0].Roles = []RoleRule{{Role: "practitioner"}, {Claim: "groups", Value: "a", Role: "admin"}}
		}},
		{"rule without value", func(c *Config) { c.Issuers[0].Roles = []RoleRule{{Claim: "groups", Role: "admin"}} }},
		{"bad role name", func(c *Config) { c.Issuers[0].Roles = []RoleRule{{Role: "Admin!"}} }},
		{"bad pointer", func(c *Config) { c.Issuers[0].Roles = []RoleRule{{Claim: "/a//b", Value: "x", Role: "admin"}} }},
		{"bad allowed scope", func(c *Config) { c.Issuers[0].AllowedScopes = []string{"openid"} }},
		{"query-restricted allowed scope", func(c *Config) { c.Issuers[0].AllowedScopes = []string{"user/Observation.rs?category=x"} }},
		{"huge skew", func(c *Config) { c.Issuers[0].ClockSkew = time.Hour }},
		{"lifetime over a day", func(c *Config) { c.Issuers[0].MaxLifetime = 48 * time.Hour }},
		{"timeout too long", func(c *Config) { c.FetchTimeout = time.Minute }},
		{"staleness below refresh", func(c *Config) { c.MaxStaleness = time.Minute }},
		{"response cap too large", func(c *Config) { c.MaxResponseBytes = 1 << 30 }},
		{"http FHIR base", func(c *Config) { c.FHIRBase = "http://ward.example/fhir" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Issuers: []Issuer{validIssuer()}}
			c.mut(&cfg)
			if _, err := New(cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestIssuerDefaults(t *testing.T) {
	v, err := New(Config{Issuers: []Issuer{validIssuer()}, PrivilegedRoles: []string{"security"}})
	if err != nil {
		t.Fatal(err)
	}
	is := v.order[0].cfg
	if is.Name != "idp.example" || is.SubjectClaim != "sub" || is.ScopeClaim != "scope" ||
		!slices.Equal(is.Algorithms, []string{"RS256", "ES256", "EdDSA"}) ||
		!slices.Equal(is.PrivilegedRoles, []string{"admin", "auditor", "privacy-officer", "security-officer", "security"}) ||
		is.ClockSkew != 30*time.Second || is.MaxLifetime != time.Hour {
		t.Errorf("defaults: %+v", is)
	}
}

func TestParseConfig(t *testing.T) {
	file := `{
	  "fetch_timeout": "3s", "refresh_interval": "15m", "max_keys": 20,
	  "privileged_roles": ["security"],
	  "fhir_base": "https://ward.example/fhir",
	  "issuers": [{
	    "name": "hospital", "issuer": "https://idp.hospital.example/realms/staff",
	    "audiences": ["https://ward.example/fhir"], "client_id": "ward",
	    "algorithms": ["RS256"], "subject_claim": "sub", "scope_claim": "scp",
	    "allowed_scopes": ["user/*.rs"], "fhir_user_claim": "fhirUser",
	    "roles": [
	      {"claim": "/realm_access/roles", "value": "ward-admin", "role": "admin"},
	      {"claim": "groups", "value": "clinicians", "role": "practitioner"}
	    ],
	    "mfa_acr": ["gold"], "clock_skew": "10s", "max_lifetime": "90m",
	    "allow_private_networks": true
	  }]
	}`
	cfg, err := ParseConfig([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FetchTimeout != 3*time.Second || cfg.RefreshInterval != 15*time.Minute || cfg.MaxKeys != 20 || len(cfg.Issuers) != 1 {
		t.Errorf("config = %+v", cfg)
	}
	is := cfg.Issuers[0]
	if is.URL != "https://idp.hospital.example/realms/staff" || is.ScopeClaim != "scp" || len(is.Roles) != 2 ||
		is.Roles[0].Claim != "/realm_access/roles" || is.MaxLifetime != 90*time.Minute || !is.AllowPrivateNetworks || is.MFAACRs[0] != "gold" {
		t.Errorf("issuer = %+v", is)
	}
	if _, err := New(cfg); err != nil {
		t.Errorf("New(parsed): %v", err)
	}
	for name, bad := range map[string]string{
		"unknown field":    `{"issuers": [], "isuers": []}`,
		"duplicate key":    `{"issuers": [], "issuers": []}`,
		"bad duration":     `{"fetch_timeout": "soon"}`,
		"numeric duration": `{"fetch_timeout": 5}`,
		"trailing data":    `{} {}`,
		"not an object":    `[]`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseConfig([]byte(`{"issuers":[` + strings.Repeat(`{},`, 400000) + `{}]}`)); err == nil {
		t.Error("oversized file accepted")
	}
}

func TestIntersectScopes(t *testing.T) {
	parse := func(ss ...string) []policy.Scope {
		var out []policy.Scope
		for _, s := range ss {
			sc, err := policy.ParseScope(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sc)
		}
		return out
	}
	for _, c := range []struct {
		token, allowed, want []string
	}{
		{[]string{"user/*.cruds"}, []string{"user/Patient.rs"}, []string{"user/Patient.rs"}},
		{[]string{"user/Patient.rs"}, []string{"user/*.cruds"}, []string{"user/Patient.rs"}},
		{[]string{"user/Patient.cud"}, []string{"user/*.rs"}, nil},
		{[]string{"system/*.rs"}, []string{"user/*.rs"}, nil},
		{[]string{"user/Patient.rs"}, []string{"user/Observation.rs"}, nil},
		{[]string{"patient/*.read", "user/Observation.cruds"}, []string{"patient/Observation.rs", "user/*.r"},
			[]string{"patient/Observation.rs", "user/Observation.r"}},
		{[]string{"user/*.rs", "user/Patient.rs"}, []string{"user/Patient.r"}, []string{"user/Patient.r"}},
		{nil, []string{"user/*.cruds"}, nil},
		{[]string{"user/*.cruds"}, nil, nil},
	} {
		got := scopeStrings(intersectScopes(parse(c.token...), parse(c.allowed...)))
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%v ∩ %v = %v, want %v", c.token, c.allowed, got, want)
		}
		// Never more than either side grants.
		for _, g := range intersectScopes(parse(c.token...), parse(c.allowed...)) {
			coveredBy := func(list []policy.Scope) bool {
				return slices.ContainsFunc(list, func(s policy.Scope) bool { return s.Covers(g) })
			}
			if !coveredBy(parse(c.token...)) || !coveredBy(parse(c.allowed...)) {
				t.Errorf("%v grants more than %v or %v", g, c.token, c.allowed)
			}
		}
	}
	// Non-SMART and query-restricted scopes are dropped, not errors.
	got, err := tokenScopes([]string{"openid profile api://x/.default user/Observation.rs?category=lab user/Patient.r"})
	if err != nil || len(got) != 1 || got[0].String() != "user/Patient.r" {
		t.Errorf("tokenScopes = %v, %v", got, err)
	}
	if _, err := tokenScopes([]string{strings.Repeat("openid ", maxTokenScopes+1)}); err == nil {
		t.Error("too many scopes accepted")
	}
}
