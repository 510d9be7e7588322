// Package fhir is Ward's model of FHIR R4 resources: strict JSON decoding,
// validation against the official R4 JSON schema plus rules the schema cannot
// express, references, the patient compartment, Bundles and OperationOutcome.
//
// What it guarantees:
//
//   - Parse accepts only well-formed FHIR JSON: valid UTF-8, no duplicate
//     member names, no trailing data, no null outside arrays, a known R4
//     resourceType, and sizes within Limits. Limits are enforced while
//     decoding, so hostile input (deep nesting, huge bodies) is rejected
//     before a large tree is built.
//
//   - Validate refuses text a reader could be misled by: control
//     characters other than tab, CR and LF, Unicode bidirectional
//     overrides and isolates, noncharacters (TextProblem), in every string;
//     and ids made of dots alone ("." and ".."), which R4's id regex allows
//     but URLs resolve as path steps (ValidID).
//
//   - Numbers are kept verbatim (json.Number), so decimals keep their
//     precision ("1.50" stays "1.50") through Parse and Marshal.
//
//   - Marshal is deterministic: the same tree always gives the same bytes.
//
//   - Every error returned by Parse, Validate and ParseBundle is an *Error
//     whose issues name the offending element with a FHIRPath-like expression
//     (for example "Patient.name[0].given"). Diagnostics never echo element
//     values, so an *Error may be logged without leaking PHI.
//
//   - A Mask removes the elements it names from a resource and from every
//     resource embedded in it, leaves valid FHIR and labels the result
//     REDACTED; on a body Marshal wrote, Mask.Apply gives exactly Marshal's
//     encoding of the masked resource, decoding only what it changes.
//
//   - A Subset (_summary, _elements) only removes elements, by the R4
//     StructureDefinitions' isSummary and min (summary_table.go, generated
//     and checked against the spec by a test), and tags the result
//     SUBSETTED.
//
//   - Validate applies the R4 StructureDefinitions (embedded in a compact
//     generated form, spec/r4model.json.gz): the cardinality of every
//     element, primitive formats the schema leaves open (base64Binary, the
//     integer types), required bindings whose value set the spec expands,
//     and the spec's FHIRPath constraints of severity error, compiled once
//     per Validator by internal/fhir/fhirpath (ConstraintReport lists which
//     are evaluated and why the others are not).
//
//   - A patch, JSONPatch (RFC 6902) or FHIRPathPatch (R4's FHIRPath Patch,
//     read by Validator.ParseFHIRPathPatch), is parsed strictly and bounded
//     before it is applied, applies all its operations or none, changes
//     only a copy, and names a failed operation by its index, never its
//     values. A FHIRPath Patch's paths select only elements of the resource
//     patched, under a step budget.
//
// What it does not do:
//   - No terminology beyond the spec's own value set expansions (no SNOMED
//     CT, LOINC or UCUM), no profiles other than the base definitions, no
//     extension definitions; constraints of severity warning are not
//     enforced.
//   - It does not resolve references or check that their targets exist.
//   - It performs no I/O and keeps no global state; a Validator holds the
//     schema and StructureDefinitions it read once, read-only, and is safe
//     for concurrent use.
package fhir
