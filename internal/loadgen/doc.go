// Package loadgen is the engine behind `ward load`: it drives a running Ward
// server through its public FHIR API over HTTPS and measures throughput and
// latency in three phases.
//
//  1. Ingest: every FHIR transaction Bundle (*.json) in a directory is read
//     into memory (not timed), then posted by Concurrency workers, largest
//     first. The transaction-response entries are matched to the request
//     entries by position; the created ids are collected per resource type.
//  2. Read by id: ReadConcurrency workers GET randomly chosen created
//     resources (deterministic seed) until Reads requests are done.
//  3. Search: a deterministic mix of Patient?family=, Observation?subject=,
//     Observation?code= (LOINC) and Encounter?patient= with values taken from
//     the loaded data.
//
// Guarantees:
//   - Only the configured server is contacted: the FHIR base URL and the token
//     URL must be https and name the same host and port, redirects are never
//     followed, and the server certificate is verified (TLS 1.2 or later)
//     against the configured CA file or, without one, the system roots.
//   - Every loop is bounded by its request count and by the context.
//   - Every non-2xx answer, transport failure or malformed
//     transaction-response counts as an error; Run then returns the complete
//     report together with a non-nil error.
//   - Output carries no resource content: error lines name the phase, the
//     resource type, the HTTP status and the OperationOutcome diagnostics
//     returned by the server, never request URLs (search values are PHI) or
//     bodies. The client secret and access tokens never appear in output or
//     errors.
//
// It does not guarantee:
//   - that the server stored what it acknowledged; reads count 2xx answers and
//     do not compare bodies with what was posted;
//   - idempotence: every run creates new resources on the server;
//   - figures comparable across machines; the client shares the machine's CPU
//     with the server when both run locally.
package loadgen
