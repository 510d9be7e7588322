// Package detect raises security alerts from Ward's audit ledger as it
// grows (catalogue G1-G3): a person reading many patients, patients
// outside their care relationships or at hours they never work, a
// colleague's, namesake's or neighbour's record, a VIP's record; a
// service or an export reading far beyond its baseline; bursts of
// denials; credential stuffing; one bearer token used from two networks;
// searches snooping on patients outside the caller's reach.
//
// A [Detector] is a pure, deterministic function of the entries it is
// fed, in order: it reads time only from the entries (never a wall
// clock), learns per-actor and per-service baselines as the entries
// stream, and keeps bounded state (sliding windows, idle actors
// forgotten). Two detectors fed the same ledger from the same point raise
// the same alerts with the same keys, so replicas and replays agree.
// [Runner] tails a store's ledger and hands alerts to a caller-supplied
// Save with the cursor they cover.
//
// What an alert holds: the rule, the actor or source concerned, ledger
// indexes as evidence (each provable against a signed checkpoint with the
// ledger's inclusion proofs) and a summary made of fixed text and
// numbers. It never holds a patient id, a name or any value of a
// resource: an alert can be shown, logged and forwarded to a SIEM without
// disclosing whom it is about. Facts about patients (colleague, namesake,
// neighbour, VIP) come from a [Facts] the caller supplies, over blind
// indexes; this package never sees plaintext.
//
// What it does not guarantee: detection is statistical and each rule has
// known false positives and negatives (docs/DETECTION.md); it sees only
// what the ledger records (a refused request that proved no one is
// aggregated per source and window, so its per-request detail is gone);
// and state is rebuilt by replaying history at start, not persisted.
package detect
