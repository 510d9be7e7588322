package records

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// writeOp is one resource write inside a storage transaction.
type writeOp struct {
	typ, id string
	res     *fhir.Resource  // nil for a deletion
	expect  int64           // If-Match version; 0 when none
	mustNew bool            // the id was just assigned: version 1 only
	within  policy.Decision // the decision whose patient obligation the write must keep

	// A write's Provenance (provenance.go): about is the write a
	// Provenance op is about, provenance the Provenance op of a write.
	about, provenance *writeOp
	// A signature's Provenance (esign.go) is sealed in the signed
	// version's compartment, with that version's security labels.
	sealIn   *string
	labelsOf *fhir.Resource

	// prepared outside the transaction
	compartment string
	index       []store.IndexEntry
	key         *keys.DataKey

	// settled before the transaction
	row    store.Resource
	stored *fhir.Resource // the body row seals

	// outcome
	entry   Entry
	created bool
	noop    bool // deletion of something absent or already deleted

	labels     []policy.Label // the security labels the writer sent
	labelsRead bool

	sub    *subscriptionWrite // a Subscription's row in the subscriptions table (subscription.go)
	action string             // what the ledger entry calls an update that created nothing ("patch"); default "update"
}

// prepare resolves a resource write's conditional references, validates
// and indexes it, and loads its data key. It runs before the storage
// transaction so that no key is created while the database's write lock
// is held.
func (s *Service) prepare(ctx context.Context, c Caller, op *writeOp) error {
	if op.typ == subscriptionType || op.sub != nil {
		if err := s.prepareSubscription(ctx, c, op); err != nil {
			return err
		}
	}
	if op.res == nil {
		return nil
	}
	op.res.SetID(op.id) // the compartment of a Patient is its own id
	if err := s.resolveConditionalRefs(ctx, c, op.res); err != nil {
		return err
	}
	if op.about != nil {
		stamp(op, s.now()) // validated and checked now; stamped again when settled
	}
	err := s.guardMasked(op)
	if err == nil {
		err = s.prepareBody(ctx, op, op.res)
	}
	if op.about != nil {
		return provenanceError(err)
	}
	return err
}

// prepareBody validates and indexes the body op will store, and loads the
// data key of its compartment.
func (s *Service) prepareBody(ctx context.Context, op *writeOp, res *fhir.Resource) error {
	if err := s.validator.Validate(res); err != nil {
		return err
	}
	values, err := s.params.Extract(op.typ, res.Object)
	if err != nil {
		return invalid("%s: search values: %v", op.typ, err)
	}
	op.index = s.indexEntries(op.typ, values)
	op.compartment = fhir.PatientCompartment(res)
	if res.Type == "Binary" && op.compartment == "" {
		if op.compartment, err = s.securityContext(ctx, res); err != nil {
			return err
		}
	}
	if op.about != nil {
		// A write's Provenance is sealed with what it is about, in the
		// compartment R4 would leave it out of.
		op.compartment = op.about.compartment
	}
	if op.sealIn != nil {
		op.compartment = *op.sealIn
	}
	if op.compartment == "" && op.about == nil && op.sealIn == nil {
		if at := fhir.UnplacedPatientReference(res); at != "" {
			return invalid("%s names its patient by identifier only; Ward places a patient's data by a literal reference: "+
				"send Patient/<id>, or Patient?identifier=system|value (a conditional reference, resolved when stored), "+
				"or give the reference's type when it is not a Patient", at)
		}
	}
	if err := bound(op.within, res, op.compartment); err != nil {
		return err
	}
	op.key, err = s.keyring.DataKey(ctx, op.compartment)
	return storeErr(err)
}

// securityContext is the compartment of the resource a Binary's
// securityContext names when that is not a Patient (a DocumentReference,
// say): the Binary is sealed, and read, as that resource's data. A
// securityContext naming nothing stored leaves the Binary shared, which
// a caller limited to some patients cannot write either, so the answer
// does not tell whether the resource exists.
func (s *Service) securityContext(ctx context.Context, res *fhir.Resource) (string, error) {
	sc, _ := res.Object["securityContext"].(map[string]any)
	ref, _ := sc["reference"].(string)
	typ, id, ok := splitTypeID(ref)
	if !ok {
		return "", nil
	}
	row, err := s.store.Current(ctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", storeErr(err)
	}
	return row.Compartment, nil
}

// bound enforces a compartment obligation on a resource being written: it
// must be sealed in the obligation's compartment and refer, through its
// compartment parameters, to no other patient. A shared resource is in no
// patient's compartment, so it is refused too.
func bound(within policy.Decision, res *fhir.Resource, compartment string) error {
	if !within.Restricted() {
		return nil
	}
	if !within.Writes(compartment) {
		return fmt.Errorf("%w: %s is not in the patient compartment the token is limited to", ErrForbidden, res.Type)
	}
	for _, p := range fhir.PatientReferences(res) {
		if !within.Writes(p) {
			return fmt.Errorf("%w: %s refers to a patient outside the compartment the token is limited to", ErrForbidden, res.Type)
		}
	}
	return nil
}

// settle decides a prepared write's version from the current row, then
// seals the body under the compartment's key. It runs outside the storage
// transaction, so the database's write lock is held only for the writes
// themselves; PutVersion's optimistic check catches any writer that came
// in between, and commit retries from here.
func (s *Service) settle(ctx context.Context, c Caller, op *writeOp, now time.Time) error {
	op.row, op.noop, op.created = store.Resource{}, false, false
	if op.about != nil {
		if err := s.settleProvenance(ctx, op, now); err != nil {
			return err
		}
	}
	var (
		cur    store.Resource
		exists bool
	)
	if !op.mustNew {
		var err error
		cur, err = s.store.Current(ctx, op.typ, op.id)
		exists = err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeErr(err)
		}
	}
	if op.within.Restricted() && !op.mustNew {
		// Whatever is stored under this id, deleted or not, may belong to
		// someone else: neither replaced nor deleted. And an id outside the
		// caller's reach must answer exactly as an unknown one (invariant
		// 10): a delete of either is not found (a shared resource, which
		// such callers read, is refused instead), and an update of either is
		// refused, since creating under a client-chosen id is not open to a
		// caller bound to some patients (it would tell taken ids apart).
		if outside := exists && !op.within.Writes(cur.Compartment); outside || !exists {
			if op.res == nil && (!exists || cur.Compartment != "") {
				return hidden()
			}
			return fmt.Errorf("%w: %s/%s: a caller limited to some patients writes only what it can see and reach", ErrForbidden, op.typ, op.id)
		}
	}
	if err := s.signedGuard(ctx, op, exists && !cur.Deleted); err != nil {
		return err
	}
	if op.expect != 0 && (!exists || cur.Version != op.expect) {
		return fmt.Errorf("%w: version %d is not current", ErrPrecondition, op.expect)
	}
	version := int64(1)
	if exists {
		version = cur.Version + 1
	}
	if op.res == nil { // deletion
		if !exists || cur.Deleted {
			op.noop = true
			if exists {
				op.entry = Entry{Type: op.typ, ID: op.id, Version: cur.Version, LastUpdated: cur.LastUpdated, Deleted: true}
			}
			return nil
		}
		if err := s.guardLabels(ctx, c, op, nil, cur, exists); err != nil {
			return err
		}
		op.row = store.Resource{Type: op.typ, ID: op.id, Version: version, Compartment: cur.Compartment, Deleted: true, LastUpdated: now, Sensitivity: cur.Sensitivity}
		op.entry = Entry{Type: op.typ, ID: op.id, Version: version, LastUpdated: now, Deleted: true}
		return nil
	}
	op.created = !exists || cur.Deleted
	// A writer who may not see some elements keeps the stored ones.
	res, err := s.carryMasked(ctx, op, cur, exists)
	if err != nil {
		return err
	}
	if err := s.guardLabels(ctx, c, op, res, cur, exists); err != nil {
		return err
	}
	if err := s.inheritLabels(ctx, op, res); err != nil {
		return err
	}
	if op.created && !op.mustNew {
		d, err := s.decide(c.Subject, policy.ActionCreate, op.typ)
		if err != nil {
			return err
		}
		if err := bound(d, res, op.compartment); err != nil {
			return err
		}
	}
	res.SetMeta(fmt.Sprint(version), now)
	op.stored = res
	body := res.Marshal()
	sealed, err := op.key.Seal(aadFor(op.typ, op.id, version, op.compartment), body)
	if err != nil {
		return storeErr(err)
	}
	// The writer is answered with what it may see of what was stored.
	served, err := s.served(op.within, body)
	if err != nil {
		return err
	}
	op.row = store.Resource{Type: op.typ, ID: op.id, Version: version, Compartment: op.compartment, LastUpdated: now, Body: sealed, Sensitivity: sensitivityOf(res)}
	op.entry = Entry{Type: op.typ, ID: op.id, Version: version, LastUpdated: now, Body: served, Compartment: op.compartment}
	return nil
}

// commit applies ops in one storage transaction. A write that loses an
// optimistic race to another writer is settled again from a fresh read,
// unless a caller's If-Match pinned the version: then the race is the
// caller's precondition failing. No update is lost either way.
func (s *Service) commit(ctx context.Context, c Caller, ops []*writeOp) error {
	for _, op := range ops {
		if err := s.prepare(ctx, c, op); err != nil {
			return err
		}
	}
	pinned := false
	for _, op := range ops {
		pinned = pinned || op.expect != 0
	}
	var err error
	for attempt := 0; attempt <= s.cfg.WriteRetries; attempt++ {
		err = s.commitOnce(ctx, c, ops)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		if pinned {
			return fmt.Errorf("%w: %w", ErrPrecondition, err)
		}
	}
	return err
}

func (s *Service) commitOnce(ctx context.Context, c Caller, ops []*writeOp) error {
	now := s.now()
	for _, op := range ops {
		if err := s.settle(ctx, c, op, now); err != nil {
			return err
		}
	}
	recs := make([]audit.Record, 0, len(ops))
	var reached []string
	for _, op := range ops {
		rec, r, err := writeRecord(c, op, now)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		reached = append(reached, r...)
	}
	enqueued := 0
	err := store.ReadWrite(ctx, s.store, func(tx store.Tx) error {
		for _, op := range ops {
			if op.noop {
				continue
			}
			if err := tx.PutVersion(ctx, op.row, op.index); err != nil {
				return err
			}
		}
		// Subscriptions' rows and the notifications of these writes
		// commit with them too: a crash after commit loses none.
		var err error
		if enqueued, err = writeSubscriptionRows(ctx, tx, ops, s.cfg.MaxSubscriptions); err != nil {
			return err
		}
		// The entries commit with the writes, or neither does (invariant 3).
		return audit.AppendInTx(ctx, tx, recs)
	})
	if err != nil {
		return storeErr(err)
	}
	if enqueued > 0 && s.cfg.Enqueued != nil {
		s.cfg.Enqueued()
	}
	c.Trail.note(reached...)
	s.forgetWritten(ops)
	return nil
}

func (s *Service) now() time.Time {
	return s.cfg.Now().UTC().Truncate(time.Microsecond)
}

// writeRecord is the ledger entry of one write, and the patients it
// reaches only through the caller's break-the-glass grants.
func writeRecord(c Caller, op *writeOp, now time.Time) (audit.Record, []string, error) {
	action := cmp.Or(op.action, "update")
	switch {
	case op.res == nil:
		action = "delete"
	case op.created:
		action = "create"
	}
	outcome := "success"
	if op.noop {
		outcome = "no-change"
	}
	e := c.entry(now, action)
	e.ResourceType, e.ResourceID, e.Version = op.typ, op.id, strconv.FormatInt(op.entry.Version, 10)
	e.Patient, e.Outcome = op.compartment, outcome
	if op.res == nil {
		e.Patient = op.row.Compartment
	}
	if op.provenance != nil {
		e.Detail = provenanceDetail(op.provenance)
	}
	reached := c.MarkEmergency(&e, e.Patient)
	rec, err := audit.NewRecord(e)
	if err != nil {
		return audit.Record{}, nil, fmt.Errorf("records: audit entry: %w", err)
	}
	return rec, reached, nil
}

func aadFor(typ, id string, version int64, compartment string) keys.AAD {
	return keys.AAD{Type: typ, ID: id, Version: version, Compartment: compartment}
}

// decrypt opens one stored version as it is stored. What a caller is
// served goes through open, which masks it.
func (s *Service) decrypt(ctx context.Context, row store.Resource) (Entry, error) {
	return s.decryptWith(ctx, row, s.keyring.DataKey)
}

// decryptWith is decrypt with the data key from dataKey.
func (s *Service) decryptWith(ctx context.Context, row store.Resource, dataKey func(context.Context, string) (*keys.DataKey, error)) (Entry, error) {
	e := Entry{Type: row.Type, ID: row.ID, Version: row.Version, LastUpdated: row.LastUpdated, Deleted: row.Deleted, Compartment: row.Compartment}
	if row.Deleted {
		return e, nil
	}
	dk, err := dataKey(ctx, row.Compartment)
	if err != nil {
		return e, storeErr(err)
	}
	e.Body, err = dk.Open(aadFor(row.Type, row.ID, row.Version, row.Compartment), row.Body)
	if err != nil {
		return e, storeErr(err)
	}
	return e, nil
}

// Create stores a new resource under a server-assigned id. Its entry
// commits with it; a create that fails is recorded with its outcome.
func (s *Service) Create(ctx context.Context, c Caller, res *fhir.Resource, opts ...WriteOption) (Entry, error) {
	e, err := s.create(ctx, c, res, optionsOf(opts))
	return answer(e, s.failed(ctx, c, err, access{action: "create", typ: res.Type}))
}

func (s *Service) create(ctx context.Context, c Caller, res *fhir.Resource, o writeOptions) (Entry, error) {
	d, err := s.decide(c.Subject, policy.ActionCreate, res.Type)
	if err != nil {
		return Entry{}, err
	}
	op := &writeOp{typ: res.Type, id: newID(), res: res, mustNew: true, within: d}
	ops, err := s.withProvenance(c, op, o.provenance)
	if err != nil {
		return Entry{}, err
	}
	if err := s.commit(ctx, c, ops); err != nil {
		return Entry{}, err
	}
	return op.entry, nil
}

// Update stores a new version of typ/id, creating it when absent. ifMatch,
// when non-zero, is the version the caller expects to replace. Its entry
// commits with it; an update that fails is recorded with its outcome.
func (s *Service) Update(ctx context.Context, c Caller, typ, id string, res *fhir.Resource, ifMatch int64, opts ...WriteOption) (Entry, bool, error) {
	e, created, err := s.update(ctx, c, typ, id, res, ifMatch, optionsOf(opts))
	if err := s.failed(ctx, c, err, access{action: "update", typ: typ, id: id}); err != nil {
		return Entry{}, false, err
	}
	return e, created, nil
}

func (s *Service) update(ctx context.Context, c Caller, typ, id string, res *fhir.Resource, ifMatch int64, o writeOptions) (Entry, bool, error) {
	d, err := s.decide(c.Subject, policy.ActionUpdate, typ)
	if err != nil {
		return Entry{}, false, err
	}
	if res.Type != typ {
		return Entry{}, false, invalid("resource type %s does not match the URL (%s)", res.Type, typ)
	}
	if res.ID != id {
		return Entry{}, false, invalid("resource id does not match the URL")
	}
	op := &writeOp{typ: typ, id: id, res: res, expect: ifMatch, within: d}
	ops, err := s.withProvenance(c, op, o.provenance)
	if err != nil {
		return Entry{}, false, err
	}
	if err := s.commit(ctx, c, ops); err != nil {
		return Entry{}, false, err
	}
	return op.entry, op.created, nil
}

// Delete records a deletion of typ/id. Deleting an absent or already
// deleted resource succeeds and changes nothing. Its entry commits with
// it; a deletion that fails is recorded with its outcome.
func (s *Service) Delete(ctx context.Context, c Caller, typ, id string) (Entry, error) {
	e, err := s.delete(ctx, c, typ, id)
	return answer(e, s.failed(ctx, c, err, access{action: "delete", typ: typ, id: id}))
}

func (s *Service) delete(ctx context.Context, c Caller, typ, id string) (Entry, error) {
	d, err := s.decide(c.Subject, policy.ActionDelete, typ)
	if err != nil {
		return Entry{}, err
	}
	op := &writeOp{typ: typ, id: id, within: d}
	if err := s.commit(ctx, c, []*writeOp{op}); err != nil {
		return Entry{}, err
	}
	return op.entry, nil
}
