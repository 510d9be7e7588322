// Package search implements FHIR R4 search parameters for Ward: the 1,375
// official SearchParameter definitions (embedded, CC0), extraction of the
// index values of a resource, and parsing of a search query string into a
// typed, validated Query.
//
// What it guarantees:
//
//   - Every definition is compiled once, at NewRegistry, by a small evaluator
//     for the FHIRPath subset the definitions use (paths with choice types,
//     "|", "and", "=", "!=", is/as, [n], where, exists, empty, not, resolve,
//     as, is, ofType, first, extension). A definition outside that subset,
//     every special parameter, and a composite whose components are not
//     all supported parameters of its base with relative expressions, is
//     marked unsupported with a reason; Unsupported lists them all, so the
//     server can advertise exactly what it searches.
//
//   - Composite parameters and identifier:of-type are read into
//     Query.Composites, not clauses: they have no index rows of their own.
//     Composite.Candidates is the query on the components' own parameters
//     that selects a superset; Composite.Matches keeps a resource only
//     when one element holds every component of one value, comparing as
//     the index does (composite.go).
//
//   - Extract is deterministic and pure: the same resource yields the same
//     values in the same order. Parameters that identify a person (names,
//     identifiers, telecom, address, birth date of Patient, Practitioner,
//     RelatedPerson, Person; identifier everywhere) are flagged Blind
//     so the caller blind-indexes them.
//
//   - ParseParams reads a raw query string or form body strictly: a pair
//     net/url would drop (a ';', a bad '%' escape), a name or value that is
//     not plain text (control characters, bidi overrides, invalid UTF-8) or
//     a repeated single-valued parameter is a *QueryError, so no search
//     runs with a filter missing.
//
//   - ParseQuery rejects what it cannot honour (unknown or unsupported
//     parameters, modifiers and prefixes, malformed values, limits
//     exceeded, chains longer than Limits.MaxChain) with a *QueryError whose message names the parameter
//     and never echoes the value. Values are carried literally: nothing here
//     builds SQL or interprets metacharacters.
//
//   - A reference parameter's elements are also indexed by their
//     Reference.identifier, as blind tokens under "code:identifier" (a
//     code no real parameter can have), and ref:identifier=[system|]value
//     is read as a token clause on them: a reference given only by a
//     business identifier is found as one given by its system and value.
//
//   - Chained parameters and _has are read to their first hop (Chain,
//     Has): the reference parameter, the target types that have the next
//     parameter, and the rest of the key and the value, for the caller to
//     parse again as a query on the target type and run as a search of its
//     own (chain.go).
//
// What it does not do: it does not execute searches, load referenced
// resources (resolve() only reads the reference's type), expand terminology
// (:in, :below on tokens), or index narrative text (_text, _content).
// It does not validate resources; Extract assumes a structurally valid
// resource and reports a malformed date or decimal as an error.
package search
