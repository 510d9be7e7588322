package detect

// window holds the events of the last span nanoseconds: how many there
// were (weighted), and how many distinct values they carried. Events
// arrive in about time order (the ledger's); expiry runs against the
// latest time seen, so an event a little older than its predecessors
// simply expires with them. At most max events are held: beyond it the
// oldest go first, which can only undercount far above any threshold.
type window struct {
	span  int64
	max   int
	ev    []event
	head  int
	count map[string]int32 // value -> events holding it; nil when values are not kept
	total int64            // sum of the weights of the events held
}

type event struct {
	t, idx int64
	n      int64 // weight
	v      string
}

func newWindow(span int64, max int, distinct bool) window {
	w := window{span: span, max: max}
	if distinct {
		w.count = map[string]int32{}
	}
	return w
}

// add records an event of weight n carrying v at time t, from ledger
// entry idx, and expires what is older than t-span.
func (w *window) add(t, idx, n int64, v string) {
	w.ev = append(w.ev, event{t: t, idx: idx, n: n, v: v})
	w.total += n
	if w.count != nil {
		w.count[v]++
	}
	w.expire(t)
	if w.len() > w.max {
		w.drop()
	}
}

// expire drops the events at or before now-span.
func (w *window) expire(now int64) {
	for w.head < len(w.ev) && w.ev[w.head].t <= now-w.span {
		w.drop()
	}
	if w.head == len(w.ev) {
		w.ev, w.head = w.ev[:0], 0
	} else if w.head >= 256 && w.head*2 >= len(w.ev) {
		n := copy(w.ev, w.ev[w.head:])
		clear(w.ev[n:])
		w.ev, w.head = w.ev[:n], 0
	}
}

func (w *window) drop() {
	e := w.ev[w.head]
	w.ev[w.head] = event{}
	w.head++
	w.total -= e.n
	if w.count != nil {
		if c := w.count[e.v] - 1; c > 0 {
			w.count[e.v] = c
		} else {
			delete(w.count, e.v)
		}
	}
}

func (w *window) len() int { return len(w.ev) - w.head }

// distinct is the number of distinct values held.
func (w *window) distinct() int { return len(w.count) }

// evidence adds the ledger indexes of the events held to a, oldest
// first, each once, skipping after (the index a lists last): a.Count
// counts them all, a.Evidence lists them up to max in all. It returns the
// last index added.
func (w *window) evidence(a *Alert, max int, after int64) int64 {
	last := after
	for _, e := range w.ev[w.head:] {
		if e.idx == last {
			continue
		}
		last = e.idx
		a.Count++
		if len(a.Evidence) < max {
			a.Evidence = append(a.Evidence, e.idx)
		}
	}
	return last
}
