// Package ledger is the storage-independent core of Ward's tamper-evident
// audit ledger (DESIGN.md, invariants 3 and 4): the audit entry and its
// canonical encoding, the RFC 6962 Merkle tree over entries, signed
// checkpoints, inclusion and consistency proofs, and an offline verifier.
//
// # What it guarantees
//
// Given the entries and stored hashes of a log and a checkpoint signed by the
// log's key, [Verify] detects any edit, deletion, reordering, insertion or
// truncation of entries below the checkpoint's size, and any stored hash that
// does not follow from the entries. Given in addition a checkpoint saved
// earlier outside the database (by an auditor or a witness), it detects a
// rollback of entries together with the stored checkpoints, and a fork.
// Proofs are plain RFC 6962 proofs: any RFC 6962 verifier accepts them (the
// tests check this with github.com/transparency-dev/merkle).
//
// It does not guarantee durability or atomicity (storage does), that an
// entry was written for every access (the records service does), or anything
// about entries past the latest checkpoint beyond their internal
// consistency. Someone holding the signing key and the database can rewrite
// history that no one outside has seen a checkpoint of; publishing
// checkpoints to witnesses bounds that window.
//
// # Entries
//
// An [Entry] is an audit event with opaque ids only. [Entry.Encode] writes
// canonical JSON; format version 1 has every key present in this order:
//
//	{"v":1,"time":"2025-03-01T12:00:00.000000000Z","actor":"...","client":"...",
//	 "source":"...","action":"...","resourceType":"...","resourceId":"...",
//	 "version":"...","patient":"...","outcome":"...","purpose":"...",
//	 "requestId":"...","query":["name",...],"detail":"..."}
//
// (one line, no whitespace). An entry that names several patients (a
// search, history or batch answer holding more than one patient's data;
// [Entry.Patients]) is written in version 2, which is version 1 with one
// more key, "patients", right after "patient":
//
//	{"v":2,...,"version":"","patient":"","patients":["id1","id2",...],"outcome":...}
//
// The list is sorted bytewise, without repeats or empty ids, each id cut to
// [MaxPatientID] bytes, at most [MaxPatients] of them, and never empty:
// an entry without it is version 1, so entries written before version 2
// existed keep their bytes and their hashes, and every entry still has
// exactly one encoding. [Entry.SetPatients] puts one patient in Patient
// and two or more in Patients; beyond MaxPatients it keeps the first
// MaxPatients and adds the flag [PatientsTruncated] and the number of
// patients to Detail ("200 patients-truncated:1234").
//
// Time is UTC with nine fractional digits. Strings are made valid UTF-8
// and cut to [MaxField] bytes ([MaxQueryName] for query names, at most
// [MaxQuery] of them), a cut value ending in [TruncatedMarker]. Quote and backslash are escaped as \" and \\; newline,
// carriage return and tab as \n, \r, \t; every other control character,
// U+2028/U+2029, bidirectional formatting characters and U+FEFF as \u00xx
// or \uxxxx (lower-case hex); everything else is written raw. [DecodeEntry]
// accepts exactly these bytes, so an entry has one encoding. [Entry.Encode]
// never writes those escapes for control and formatting characters: it
// replaces each such character by U+FFFD first, so no entry written since
// holds one, whatever its writer put in it; the escapes stay in the format
// for the entries written before.
//
// # Tree
//
// The leaf hash of an entry is tlog.RecordHash of its encoding, that is
// SHA-256(0x00 || encoding); interior nodes are SHA-256(0x01 || left ||
// right); the empty tree hashes to SHA-256(""). Entry i is leaf i. Stored
// hashes use tlog's layout: appending entry i stores the hashes returned by
// [StoredHashes] at tlog.StoredHashIndex(0, i) onwards, about two per entry.
// Storage exposes them through [HashReader]; [MemLog] is the in-memory
// reference.
//
// # Checkpoints
//
// A checkpoint is a C2SP tlog-checkpoint: a signed note (golang.org/x/mod
// sumdb/note) whose body is "<origin>\n<size>\n<base64 root hash>\n". The
// log's key name is the origin. [Signer] holds an Ed25519 key and signs
// checkpoint bodies of its own origin and nothing else; [OpenCheckpoint]
// checks the signature and parses the body strictly, ignoring extension
// lines (Ward writes none). Operators publish [Signer.VerifierKey].
//
// # Sequencing
//
// The ledger is a single sequence: entry i exists for every i below the size,
// exactly once, with no forks. With several Ward processes on one PostgreSQL
// database this is ensured by the database, not by a process:
//
//   - Appending is part of the records transaction (so a write and its entry
//     commit together). Within it the appender takes an exclusive lock on
//     the ledger head (SELECT ... FOR UPDATE on a one-row counter table that
//     holds the size, or LOCK TABLE on the ledger in SHARE ROW EXCLUSIVE
//     mode). Under the lock it reads the size n, assigns indexes n, n+1, ...
//     to its entries, computes their [StoredHashes] reading earlier hashes in
//     the same transaction, inserts entries and hashes, and advances the
//     counter. The lock is released at commit or rollback, so a transaction
//     that aborts leaves no gap, and no two transactions can take the same
//     index. The entry and hash tables have the index as primary key as a
//     second line of defence.
//   - Group commit: a process batches the entries of concurrent requests
//     into one such transaction (or one short lock hold), so the lock and
//     the fsync are paid once per batch, not once per entry. Processes
//     contend only for the lock.
//   - Whoever holds the lock computes the tree hashes, so hashes are always
//     computed over the committed prefix plus the holder's own entries.
//   - Checkpoints are signed outside the append lock from a committed size
//     and root ([TreeHash] at that size), at least every second while entries
//     arrive. Any process may sign; two checkpoints of the same size agree
//     because the tree is determined by the entries.
//
// SQLite has one writer at a time, which gives the same guarantees with the
// same code.
//
// # Verification
//
// [Verify] streams entries in index order with constant memory (the
// frontier of the tree, one hash per level), and reports the first problem
// as a [*VerifyError] naming the index and what is wrong. [VerifyHead] is
// the check a server makes before serving and signing on top of a stored
// log: the latest checkpoint's signature, the stored hashes that make up
// its root, the entries after it, and consistency with trusted
// checkpoints, in O(entries after it + log size); it leaves entries below
// the checkpoint to Verify. [VerifyInclusion]
// and [VerifyConsistency] check single proofs against opened checkpoints and
// wrap [ErrProof].
package ledger
