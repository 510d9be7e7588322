package api

import (
	"fmt"
	"slices"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
)

// Pseudonyms turns a value an unproven caller chose into a keyed hash for
// the ledger, which can never be erased (catalogue E5). *keys.Pseudonyms
// is the implementation; Sum must return a string that cannot hold the
// value.
type Pseudonyms = records.Pseudonyms

// What a pseudonym stands for: Pseudonyms.Sum's kind.
const (
	pseudoClient   = "client"                   // a client id nobody proved and no registered client has
	pseudoUsername = "username"                 // a user name no account has, normalised
	pseudoType     = records.PseudonymType      // a path segment that is no resource type
	pseudoID       = "resource-id"              // an id in the URL of a request that proved no one
	pseudoQuery    = records.PseudonymQueryName // a query parameter name outside the names' alphabet
	pseudoToken    = records.PseudonymToken     // the jti of a bearer token
)

// PseudonymKinds are the kinds of value the ledger records as keyed
// hashes, each with what it stands for.
var PseudonymKinds = map[string]string{ // #nosec G101 -- labels of the ledger's pseudonym kinds, not credentials
	pseudoClient:   "a client id nobody proved and no registered client has",
	pseudoUsername: "a user name no account has (compared in lower case, trimmed)",
	pseudoType:     "a path segment of a FHIR URL that is no resource type",
	pseudoID:       `the "Type/id" in the URL of a request that proved no one`,
	pseudoQuery:    "a query parameter name outside the names' alphabet",
	pseudoToken:    "the jti of the bearer token a request presented (its entries' token)",
}

// PseudonymOf is the pseudonym the ledger records for value of kind (one
// of PseudonymKinds), so that an auditor can look for the attempts made
// with a value without the ledger holding it: a user name is normalised
// as sign-in normalises it.
func PseudonymOf(p Pseudonyms, kind, value string) (string, error) {
	if _, ok := PseudonymKinds[kind]; !ok {
		return "", fmt.Errorf("api: unknown pseudonym kind %q", kind)
	}
	if kind == pseudoUsername {
		value = auth.NormaliseUsername(value)
	}
	return p.Sum(kind, value), nil
}

// proven reports whether the exchange's request proved who sends it: a
// verified bearer token or a person the sign-in knows. (A client that
// authenticates at the token endpoint proves itself too, but only a
// success says so, and then nothing it chose is recorded.)
func (x *exchange) proven() bool {
	return x.user != "" || x.verified
}

// knownType reports whether typ, the resourceType of an entry, is a name
// Ward itself uses: a FHIR resource type, the system history, or the
// names of Ward's own endpoints.
func knownType(typ string) bool {
	switch typ {
	case "", "_history", "Ledger", "User", "Client", "Alert", "Incident":
		return true
	}
	return fhir.IsResourceType(typ)
}

// callerFields returns the entry's actor, client, resource type, id and
// query names of x, where nothing an unproven caller chose appears as
// given: a client id nobody proved, a user name no account has, a path
// segment that is no resource type, the id in the URL of a request that
// proved no one, and a parameter name outside the names' alphabet become
// keyed hashes; an unproven request's parameter names are left out.
func (s *Server) callerFields(x *exchange) (actor, client, typ, id string, query []string) {
	sum := s.cfg.Pseudonyms.Sum
	client = x.caller.ClientID
	if client == "" && x.claimed != "" {
		client = sum(pseudoClient, x.claimed)
	}
	switch {
	case x.user != "":
		actor = x.user
	case x.account != "":
		actor = x.account
	case x.username != "":
		actor = sum(pseudoUsername, x.username)
	default:
		actor = client
	}
	typ, id = x.typ, x.id
	if !knownType(typ) {
		typ = sum(pseudoType, typ)
	}
	proven := x.proven()
	if id != "" && !proven {
		id = sum(pseudoID, x.typ+"/"+id)
	}
	if !proven {
		return actor, client, typ, id, nil
	}
	query = x.query
	if slices.ContainsFunc(x.query, func(name string) bool { return !records.PlainName(name) }) {
		query = slices.Clone(x.query)
		for i, name := range query {
			if !records.PlainName(name) {
				query[i] = sum(pseudoQuery, name)
			}
		}
	}
	return actor, client, typ, id, query
}
