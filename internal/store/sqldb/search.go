package sqldb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/store"
)

// builder assembles a statement from fixed fragments and bound parameters.
// Values never enter the SQL text: arg writes only a placeholder.
type builder struct {
	sb       strings.Builder
	args     []any
	numbered bool // $N placeholders (PostgreSQL); otherwise ?
	// paged reserves parameters 1 and 2 for the LIMIT and OFFSET that
	// fetchPage appends, and numbers the others after them (?N on SQLite).
	// SQLite's planner reads a bound LIMIT's value, and a statement whose
	// planner read parameter 31 or higher is prepared again each time any
	// parameter from 31 up is bound: a LIMIT bound after 30 others made
	// every page query parse and plan again.
	paged bool
	// arrays binds lists as text[] (PostgreSQL); otherwise as JSON text.
	arrays bool
}

func newBuilder(d Dialect) *builder { return &builder{numbered: d.Numbered, arrays: d.Arrays} }

// newPageBuilder starts a query whose rows fetchPage reads.
func newPageBuilder(d Dialect) *builder {
	return &builder{numbered: d.Numbered, arrays: d.Arrays, paged: true}
}

func (b *builder) w(s string) { b.sb.WriteString(s) }

// arg binds v and writes its placeholder.
func (b *builder) arg(v any) {
	b.args = append(b.args, v)
	n := len(b.args)
	if b.paged {
		n += 2
	}
	b.placeholder(n)
}

// placeholder writes parameter n's placeholder: $n, ?n, or ? where
// parameters are bound in order.
func (b *builder) placeholder(n int) {
	if b.numbered {
		b.sb.WriteByte('$')
	} else {
		b.sb.WriteByte('?')
		if !b.paged {
			return
		}
	}
	b.sb.WriteString(strconv.Itoa(n))
}

// likeEscape makes s match literally inside a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// cmpSQL writes the comparison of a row range [loCol,hiCol] with a search
// range [lo,hi], per the comments on store.Cmp.
func cmpSQL(b *builder, loCol, hiCol string, c store.Cmp, lo, hi any) error {
	switch c {
	case store.CmpEq, store.CmpNe:
		if c == store.CmpNe {
			b.w("NOT ")
		}
		b.w("(" + loCol + " >= ")
		b.arg(lo)
		b.w(" AND " + hiCol + " <= ")
		b.arg(hi)
		b.w(")")
	case store.CmpGt:
		b.w(hiCol + " > ")
		b.arg(hi)
	case store.CmpLt:
		b.w(loCol + " < ")
		b.arg(lo)
	case store.CmpGe:
		b.w(hiCol + " >= ")
		b.arg(lo)
	case store.CmpLe:
		b.w(loCol + " <= ")
		b.arg(hi)
	case store.CmpSa:
		b.w(loCol + " > ")
		b.arg(hi)
	case store.CmpEb:
		b.w(hiCol + " < ")
		b.arg(lo)
	case store.CmpAp:
		b.w("(" + loCol + " <= ")
		b.arg(hi)
		b.w(" AND " + hiCol + " >= ")
		b.arg(lo)
		b.w(")")
	default:
		return fmt.Errorf("sqldb: search: unknown comparator %d", c)
	}
	return nil
}

// micros converts a bound in unix seconds to unix microseconds, the
// precision of stored timestamps. The bound is rounded to the nearest
// microsecond: a float64 of about 1.7e9 seconds cannot hold every
// microsecond exactly, and rounding recovers the instant the caller meant.
func micros(sec float64) (int64, error) {
	if math.IsNaN(sec) {
		return 0, errors.New("sqldb: search: NaN bound")
	}
	v := math.Round(sec * 1e6)
	switch {
	case v >= math.MaxInt64:
		return math.MaxInt64, nil
	case v <= math.MinInt64:
		return math.MinInt64, nil
	}
	return int64(v), nil
}

// kindSQL writes the kind condition as a literal, not a bound parameter:
// the search indexes are partial, one per kind, and a planner can use a
// partial index only when the query's condition visibly implies the
// index's. Kinds are the store's own small integers, never input.
func kindSQL(b *builder, k store.IndexKind) {
	b.w("s.kind = " + strconv.Itoa(int(k)))
}

// rowPredicate writes the condition an index row (alias s) must meet.
func rowPredicate(b *builder, p store.Predicate) error {
	if p.Kind != 0 {
		kindSQL(b, p.Kind)
		b.w(" AND ")
	}
	if p.HasSystem {
		b.w("s.system = ")
		b.arg(p.System)
		b.w(" AND ")
	}
	switch p.Op {
	case store.OpEq:
		if len(p.Alt) == 0 {
			b.w("s.value = ")
			b.arg(p.Value)
			break
		}
		b.w("s.value IN (")
		b.arg(p.Value)
		for _, v := range p.Alt {
			b.w(", ")
			b.arg(v)
		}
		b.w(")")
	case store.OpPrefix:
		b.w(`s.value LIKE `)
		b.arg(likeEscape(p.Value) + "%")
		b.w(` ESCAPE '\'`)
	case store.OpContains:
		b.w(`s.value LIKE `)
		b.arg("%" + likeEscape(p.Value) + "%")
		b.w(` ESCAPE '\'`)
	case store.OpSystem:
		if !p.HasSystem {
			return errors.New("sqldb: search: a system-only predicate without a system")
		}
		b.w("s.value IS NOT NULL") // any value: the system, written above, is the condition
	case store.OpRange:
		if math.IsNaN(p.Lo) || math.IsNaN(p.Hi) {
			return errors.New("sqldb: search: NaN bound")
		}
		if p.Kind == store.KindQuantity && p.Value != "" {
			b.w("s.value = ")
			b.arg(p.Value)
			b.w(" AND ")
		}
		return cmpSQL(b, "s.lo", "s.hi", p.Cmp, p.Lo, p.Hi)
	default:
		return fmt.Errorf("sqldb: search: unknown operator %d", p.Op)
	}
	return nil
}

// clauseSQL writes a disjunction of predicates on one parameter. Each
// predicate is a semi-join on the resource's index rows: positive predicates
// share one subquery, negated and missing predicates get their own.
func clauseSQL(b *builder, typ string, c store.Clause) error {
	if c.Param == "" || len(c.Any) == 0 {
		return errors.New("sqldb: search: clause needs a parameter and at least one predicate")
	}
	sub := func(not bool) {
		if not {
			b.w("r.rid NOT IN (")
		} else {
			b.w("r.rid IN (")
		}
		b.w("SELECT s.rid FROM search_index s WHERE s.rtype = ")
		b.arg(typ)
		b.w(" AND s.param = ")
		b.arg(c.Param)
	}
	b.w("(")
	first := true
	or := func() {
		if !first {
			b.w(" OR ")
		}
		first = false
	}
	var positive []store.Predicate
	for _, p := range c.Any {
		switch {
		case p.Op == store.OpMissing:
			or()
			sub(p.Missing != p.Not)
			if p.Kind != 0 {
				b.w(" AND ")
				kindSQL(b, p.Kind)
			}
			b.w(")")
		case p.Not:
			or()
			sub(true)
			b.w(" AND ")
			if err := rowPredicate(b, p); err != nil {
				return err
			}
			b.w(")")
		default:
			positive = append(positive, p)
		}
	}
	if len(positive) > 0 {
		// Equalities share one list parameter (anyRowSQL): a chained
		// search's clause lists up to a thousand references.
		or()
		sub(false)
		b.w(" AND (")
		if err := anyRowSQL(b, positive); err != nil {
			return err
		}
		b.w("))")
	}
	b.w(")")
	return nil
}

// whereSQL writes FROM and WHERE for a search.
func whereSQL(b *builder, q store.Query) error {
	b.w(" FROM resources r WHERE r.is_current AND NOT r.deleted AND r.rtype = ")
	b.arg(q.Type)
	if len(q.IDs) > 0 {
		b.w(" AND r.rid IN (")
		for i, id := range q.IDs {
			if i > 0 {
				b.w(", ")
			}
			b.arg(id)
		}
		b.w(")")
	}
	if q.AfterID != "" {
		b.w(" AND r.rid > ")
		b.arg(q.AfterID)
	}
	if q.Compartment != nil {
		b.w(" AND r.compartment = ")
		b.arg(*q.Compartment)
	}
	if q.Compartments != nil {
		if len(q.Compartments) == 0 {
			b.w(" AND 1 = 0")
		} else {
			b.w(" AND ")
			memberSQL(b, "r.compartment", false, q.Compartments)
		}
	}
	if q.Views != nil {
		b.w(" AND ")
		if err := viewsSQL(b, q.Type, q.Views); err != nil {
			return err
		}
	}
	for _, p := range q.Updated {
		if p.Op != store.OpRange {
			return errors.New("sqldb: search: _lastUpdated takes range predicates only")
		}
		lo, err := micros(p.Lo)
		if err != nil {
			return err
		}
		hi, err := micros(p.Hi)
		if err != nil {
			return err
		}
		b.w(" AND ")
		if p.Not {
			b.w("NOT ")
		}
		b.w("(")
		if err := cmpSQL(b, "r.last_updated", "r.last_updated", p.Cmp, lo, hi); err != nil {
			return err
		}
		b.w(")")
	}
	for _, c := range q.Clauses {
		b.w(" AND ")
		if err := clauseSQL(b, q.Type, c); err != nil {
			return err
		}
	}
	return nil
}

// viewsSQL writes the disjunction of a query's views (store.View): each
// admits its compartments' resources by their sensitivity bits, and, for
// resources with partly admitted bits, by the absence of hidden index rows.
// The bit masks are bound parameters; both backends have the & operator.
func viewsSQL(b *builder, typ string, views []store.View) error {
	if len(views) == 0 {
		b.w("1 = 0")
		return nil
	}
	var named []string // compartments the views name, for the nil ones
	for _, v := range views {
		named = append(named, v.Compartments...)
	}
	b.w("(")
	first := true
	for _, v := range views {
		if v.None {
			continue
		}
		if !first {
			b.w(" OR ")
		}
		first = false
		b.w("(")
		switch {
		case v.Compartments != nil && len(v.Compartments) == 0:
			b.w("1 = 0")
		case v.Compartments != nil:
			memberSQL(b, "r.compartment", false, v.Compartments)
		case len(named) > 0:
			memberSQL(b, "r.compartment", true, named)
		default:
			b.w("1 = 1")
		}
		b.w(" AND (")
		if v.Sensitivity == 0 {
			b.w("r.sensitivity = 0")
		} else {
			b.w("(r.sensitivity & ")
			b.arg(int64(^v.Sensitivity))
			b.w(") = 0")
		}
		if v.Partial != 0 {
			b.w(" OR ((r.sensitivity & ")
			b.arg(int64(^(v.Sensitivity | v.Partial)))
			b.w(") = 0")
			if len(v.Hidden.Any) > 0 {
				if v.Hidden.Param == "" {
					return errors.New("sqldb: search: a view's hidden clause needs a parameter")
				}
				// Correlated, so that only the rows that reach this
				// branch look up their own index rows.
				b.w(" AND NOT EXISTS (SELECT 1 FROM search_index s WHERE s.rtype = r.rtype AND s.rid = r.rid AND s.param = ")
				b.arg(v.Hidden.Param)
				b.w(" AND (")
				if err := anyRowSQL(b, v.Hidden.Any); err != nil {
					return err
				}
				b.w("))")
			}
			b.w(")")
		}
		b.w("))")
	}
	if first {
		b.w("1 = 0")
	}
	b.w(")")
	return nil
}

// anyRowSQL writes the disjunction of positive predicates on an index
// row (alias s). Equality predicates of one kind and system share one IN
// list.
func anyRowSQL(b *builder, preds []store.Predicate) error {
	type key struct {
		kind      store.IndexKind
		hasSystem bool
		system    string
	}
	var order []key
	values := map[key][]string{}
	first := true
	or := func() {
		if !first {
			b.w(" OR ")
		}
		first = false
	}
	for _, p := range preds {
		if p.Not || p.Op == store.OpMissing {
			return errors.New("sqldb: search: a view's hidden predicates must be positive")
		}
		if p.Op == store.OpEq && p.Kind != 0 {
			k := key{p.Kind, p.HasSystem, p.System}
			if _, ok := values[k]; !ok {
				order = append(order, k)
			}
			values[k] = append(append(values[k], p.Value), p.Alt...)
			continue
		}
		or()
		b.w("(")
		if err := rowPredicate(b, p); err != nil {
			return err
		}
		b.w(")")
	}
	for _, k := range order {
		or()
		b.w("(")
		kindSQL(b, k.kind)
		if k.hasSystem {
			b.w(" AND s.system = ")
			b.arg(k.system)
		}
		b.w(" AND ")
		memberSQL(b, "s.value", false, values[k])
		b.w(")")
	}
	return nil
}

// memberSQL writes whether col is (or, with not, is not) one of values,
// which must not be empty. Lists of more than one value are bound as one
// parameter (a JSON array read with json_each on SQLite, a text[] on
// PostgreSQL), so that a statement's text and parameter count do not
// grow with them: a practitioner's search lists every related patient,
// and its text is then the same whatever their number, and the
// parameters after the list keep low numbers (see builder.paged).
func memberSQL(b *builder, col string, not bool, values []string) {
	if len(values) == 1 {
		b.w(col)
		if not {
			b.w(" <> ")
		} else {
			b.w(" = ")
		}
		b.arg(values[0])
		return
	}
	if b.arrays {
		if not {
			b.w("NOT ")
		}
		b.w("(" + col + " = ANY(")
		b.arg(values)
		b.w("::text[]))")
		return
	}
	list, err := json.Marshal(values)
	if err != nil {
		panic(err) // a []string always marshals
	}
	b.w(col)
	if not {
		b.w(" NOT")
	}
	b.w(" IN (SELECT value FROM json_each(")
	b.arg(string(list))
	b.w("))")
}

// orderSQL writes ORDER BY: the sort keys, then rid as the tiebreak (the
// type is fixed by the query). Resources lacking a sort parameter sort last
// in both directions.
func orderSQL(b *builder, keys []store.SortKey) error {
	b.w(" ORDER BY ")
	for _, k := range keys {
		dir := " ASC"
		if k.Desc {
			dir = " DESC"
		}
		switch k.Param {
		case "":
			return errors.New("sqldb: search: empty sort parameter")
		case "_id":
			b.w("r.rid" + dir)
		case "_lastUpdated":
			b.w("r.last_updated" + dir)
		default:
			col := "s.value"
			switch k.Kind {
			case store.KindDate, store.KindNumber, store.KindQuantity:
				col = "s.lo"
			}
			agg := "MIN("
			if k.Desc {
				agg = "MAX("
			}
			b.w("(SELECT " + agg + col + ") FROM search_index s WHERE s.rtype = r.rtype AND s.rid = r.rid AND s.param = ")
			b.arg(k.Param)
			b.w(")" + dir + " NULLS LAST")
		}
		b.w(", ")
	}
	b.w("r.rid ASC")
	return nil
}

func checkPaging(offset, count int) error {
	if offset < 0 || count < 0 {
		return errors.New("sqldb: negative offset or count")
	}
	return nil
}

func (db *DB) search(ctx context.Context, q querier, sq store.Query) (store.Page, error) {
	if sq.Type == "" {
		return store.Page{}, errors.New("sqldb: search: type is required")
	}
	if err := checkPaging(sq.Offset, sq.Count); err != nil {
		return store.Page{}, err
	}
	if sq.Count == 0 {
		if !sq.Total {
			return store.Page{}, nil
		}
		total, err := db.count(ctx, q, sq)
		return store.Page{Total: total, More: total > sq.Offset}, err
	}
	b := newPageBuilder(db.d)
	b.w("SELECT r.rtype, r.rid, r.version, r.compartment, r.deleted, r.last_updated, r.body, r.sensitivity")
	if err := whereSQL(b, sq); err != nil {
		return store.Page{}, err
	}
	if err := orderSQL(b, sq.Sort); err != nil {
		return store.Page{}, err
	}
	page, err := db.fetchPage(ctx, q, b, sq.Offset, sq.Count, store.Page{})
	if err != nil || !sq.Total {
		return page, err
	}
	// A page that ends the matches, and holds at least one of them, tells
	// the total itself: the offset plus its rows. Only a page with more
	// after it, or an empty page past the first, needs the count query,
	// which reads every match's row again.
	if !page.More && (len(page.Resources) > 0 || sq.Offset == 0) {
		page.Total = sq.Offset + len(page.Resources)
		return page, nil
	}
	page.Total, err = db.count(ctx, q, sq)
	return page, err
}

// count returns the number of a search's matches.
func (db *DB) count(ctx context.Context, q querier, sq store.Query) (int, error) {
	b := newBuilder(db.d)
	b.w("SELECT COUNT(*)")
	if err := whereSQL(b, sq); err != nil {
		return 0, err
	}
	var total int
	if err := q.QueryRowContext(ctx, b.sb.String(), b.args...).Scan(&total); err != nil {
		return 0, db.wrap("search: count", err)
	}
	return total, nil
}

// fetchPage appends LIMIT/OFFSET to a query begun with newPageBuilder,
// reads count+1 rows and sets More.
func (db *DB) fetchPage(ctx context.Context, q querier, b *builder, offset, count int, page store.Page) (store.Page, error) {
	if !b.paged {
		return store.Page{}, errors.New("sqldb: a page query must reserve its LIMIT and OFFSET parameters")
	}
	b.w(" LIMIT ")
	b.placeholder(1)
	b.w(" OFFSET ")
	b.placeholder(2)
	args := append([]any{int64(count) + 1, int64(offset)}, b.args...)
	rows, err := q.QueryContext(ctx, b.sb.String(), args...)
	if err != nil {
		return store.Page{}, db.wrap("query", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return store.Page{}, db.wrap("query: scan", err)
		}
		if len(page.Resources) == count {
			page.More = true
			break
		}
		page.Resources = append(page.Resources, r)
	}
	if err := rows.Err(); err != nil {
		return store.Page{}, db.wrap("query", err)
	}
	return page, nil
}

// historyWhere writes FROM and WHERE for a history query.
func historyWhere(b *builder, q store.HistoryQuery) {
	b.w(" FROM resources WHERE 1 = 1")
	if q.Type != "" {
		b.w(" AND rtype = ")
		b.arg(q.Type)
	}
	if q.ID != "" {
		b.w(" AND rid = ")
		b.arg(q.ID)
	}
	if !q.Since.IsZero() {
		b.w(" AND last_updated >= ")
		b.arg(q.Since.UnixMicro())
	}
	if !q.Before.IsZero() {
		b.w(" AND last_updated < ")
		b.arg(q.Before.UnixMicro())
	}
}

func (db *DB) history(ctx context.Context, q querier, hq store.HistoryQuery) (store.Page, error) {
	if hq.ID != "" && hq.Type == "" {
		return store.Page{}, errors.New("sqldb: history: an id needs a type")
	}
	if err := checkPaging(hq.Offset, hq.Count); err != nil {
		return store.Page{}, err
	}
	var page store.Page
	b := newBuilder(db.d)
	b.w("SELECT COUNT(*)")
	historyWhere(b, hq)
	if err := q.QueryRowContext(ctx, b.sb.String(), b.args...).Scan(&page.Total); err != nil {
		return store.Page{}, db.wrap("history: count", err)
	}
	if hq.Count == 0 {
		page.More = page.Total > hq.Offset
		return page, nil
	}
	b = newPageBuilder(db.d)
	b.w("SELECT " + resourceCols)
	historyWhere(b, hq)
	b.w(" ORDER BY last_updated DESC, version DESC, rtype ASC, rid ASC")
	return db.fetchPage(ctx, q, b, hq.Offset, hq.Count, page)
}
