// Package incident is Ward's security incident response: the alerts the
// anomaly detector raised, incidents that group them with an owner, a
// runbook, a timeline and the regulatory notification clocks, and breach
// scoping from the ledger's indexes.
package incident
