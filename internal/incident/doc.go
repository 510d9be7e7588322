// Package incident is Ward's security incident response: the alerts the
// anomaly detector raised, incidents that group them with an owner, a
// runbook, a timeline and the regulatory notification clocks, and breach
// scoping from the ledger's indexes.
//
// Breach scoping: given a user or client whose
// credentials or conduct are in question and a window of time, it lists
// from the audit ledger everything they read or changed, every patient
// whose data that was, with the data categories and dates a notification
// needs (HIPAA 164.404-164.410, GDPR Art. 33-34), and proves each entry it
// relies on with an RFC 6962 inclusion proof against a signed checkpoint.
//
// How: [Scope] reads the actor's entries through the store's actor index
// (store.ActorQuery: actor or client, then time), so its cost grows with
// the actor's entries in the window, not with the ledger. Each entry's
// encoding is decoded and must name the actor and fall in the window, so
// an index row edited to pull someone else's entry in is refused; each
// inclusion proof is computed from the stored tree hashes and checked
// against the latest signed checkpoint before the report is returned.
//
// Which checkpoint: the latest one stored. Entries appended after it are
// listed, marked not covered (no proof), and counted in
// [Report.Uncovered]; a caller that wants every entry proven signs a
// fresh checkpoint first (audit.Checkpoint), as `ward incident scope`
// does. A running server signs one every second or so.
//
// What a report proves and what it does not: [Verify], with only the
// ledger's public key, shows that every listed entry is in the signed
// ledger, names the actor, falls in the window, and that the report's
// lists and summary are exactly what those entries say. It cannot show
// that no entry was left out: completeness rests on the actor index,
// which the Merkle tree does not cover and which `ward audit verify`
// checks against every entry (audit.VerifyPatientIndex). On SQLite, entries
// a running server has made durable in its spool but not yet folded into
// the ledger (a second or so) are not seen.
//
// Reports carry opaque ids only (the ledger holds no PHI): patient ids,
// resource ids, actor and client ids. The operator joins patient ids to
// contact details outside Ward.
package incident
