package applog

import (
	"slices"
	"strings"

	"github.com/slipstream-kv/slipstream"
)

// item is a live entry's value and version. An overwrite replaces val with a
// new slice and never writes into the old one, so a value slice handed to a
// reader stays valid and unchanged for as long as the reader keeps it.
type item struct {
	val []byte
	ver slipstream.Version
}

// table is the in-RAM fold: a hash map for point reads and an ordered key
// index for range scans. Mutations need the store's write lock; lookups in m
// need at least its read lock, or the single-writer lock (m changes only
// under both).
type table struct {
	m   map[string]*item
	idx index
}

// index orders the keys of a table without sorting on every scan. base and
// delta are sorted, duplicate-free and published: once built they are never
// written again, so a reader may iterate a captured pair without a lock.
// Both may name keys deleted since (a scan checks each key against the map)
// and the same key may sit in both (a scan emits it once).
type index struct {
	base    []string // keys as of the last full build
	delta   []string // keys inserted since base was built
	pending []string // keys inserted since delta was built, unsorted; writer-private
	dead    int      // deletes since base was built
}

func newTable() *table { return &table{m: make(map[string]*item)} }

// reserve sizes an empty table for n keys.
func (t *table) reserve(n int) {
	if len(t.m) == 0 && n > 0 {
		t.m = make(map[string]*item, n)
		t.idx.pending = make([]string, 0, n)
	}
}

// put folds a replayed PUT (key and value alias the log and are copied).
// Replayed PUTs are mostly inserts, so it assigns first and detects an
// overwrite by the map's unchanged length: one hash per record. An
// overwritten key's previous string may linger in the index until its next
// rebuild; it is a copy of the same bytes.
func (t *table) put(key, value []byte, v slipstream.Version) bool {
	k := string(key)
	n := len(t.m)
	t.m[k] = &item{val: cloneBytes(value), ver: v}
	if len(t.m) == n {
		return true
	}
	t.idx.pending = append(t.idx.pending, k)
	return false
}

// del folds a replayed DELETE.
func (t *table) del(key []byte) { t.remove(string(key)) }

// apply folds one update. The key is copied on insert so the table never
// pins the caller's memory.
func (t *table) apply(u *slipstream.Update) {
	if u.Op != slipstream.OpPut {
		t.remove(u.Key)
		return
	}
	if it, ok := t.m[u.Key]; ok {
		it.val, it.ver = cloneBytes(u.Value), u.Version
		return
	}
	k := strings.Clone(u.Key)
	t.m[k] = &item{val: cloneBytes(u.Value), ver: u.Version}
	t.idx.pending = append(t.idx.pending, k)
}

func (t *table) remove(key string) {
	if _, ok := t.m[key]; ok {
		delete(t.m, key)
		t.idx.dead++
	}
}

// cloneBytes copies b into an exactly sized, non-nil slice (an empty value
// is a present entry).
func cloneBytes(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// needsRefresh reports whether a scan must fold pending keys in (or rebuild
// the base) before reading the index.
func (t *table) needsRefresh() bool {
	x := &t.idx
	return len(x.pending) > 0 || len(x.delta)+x.dead > len(x.base)/8+1024
}

// overdue reports whether the index has grown so stale that the writer
// should refresh it even if nobody scans: it bounds the memory held by
// pending keys and by deleted keys still in base.
func (t *table) overdue() bool {
	x := &t.idx
	return len(x.pending)+x.dead > len(x.base)/2+4096
}

// refresh folds pending keys into delta and, once delta and the deletes are
// a sizable fraction of base, merges delta into a new base without the
// deleted keys. Amortised, each insert or delete costs O(1) key moves plus
// the sort of its own batch. The caller holds the write lock.
func (t *table) refresh() {
	x := &t.idx
	if len(x.pending) > 0 {
		slices.Sort(x.pending)
		switch {
		case len(x.base) == 0 && len(x.delta) == 0 && x.dead == 0:
			// Nothing was deleted since the index was empty, so every
			// pending key is live: the sorted pending keys become the base
			// as they are (the bulk of a load).
			x.base = slices.Clip(slices.Compact(x.pending))
			x.pending = nil
		case len(x.base) == 0 && len(x.delta) == 0:
			x.base = mergeKeys(nil, x.pending, t.m)
			x.dead = 0
		default:
			x.delta = mergeKeys(x.delta, x.pending, nil)
		}
		if cap(x.pending) > 1024 {
			x.pending = nil
		} else {
			x.pending = x.pending[:0]
		}
	}
	if len(x.delta)+x.dead > len(x.base)/8+1024 {
		x.base = mergeKeys(x.base, x.delta, t.m)
		x.delta, x.dead = nil, 0
	}
}

// mergeKeys merges two sorted slices into a new sorted slice without
// duplicates, keeping only keys present in live when live is not nil.
func mergeKeys(a, b []string, live map[string]*item) []string {
	out := make([]string, 0, len(a)+len(b))
	keep := func(k string) {
		if n := len(out); n > 0 && out[n-1] == k {
			return
		}
		if live != nil {
			if _, ok := live[k]; !ok {
				return
			}
		}
		out = append(out, k)
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			keep(a[i])
			i++
		case b[j] < a[i]:
			keep(b[j])
			j++
		default:
			keep(a[i])
			i++
			j++
		}
	}
	for ; i < len(a); i++ {
		keep(a[i])
	}
	for ; j < len(b); j++ {
		keep(b[j])
	}
	return slices.Clip(out)
}

// keyIter walks the union of two published index slices in ascending order,
// once per key, restricted to a prefix. Keys may be dead; the caller checks.
type keyIter struct {
	a, b   []string
	prefix string
}

func newKeyIter(base, delta []string, prefix string) *keyIter {
	i, _ := slices.BinarySearch(base, prefix)
	j, _ := slices.BinarySearch(delta, prefix)
	return &keyIter{a: base[i:], b: delta[j:], prefix: prefix}
}

// next returns the next key with the prefix; false at the end.
func (it *keyIter) next() (string, bool) {
	var k string
	switch {
	case len(it.a) > 0 && len(it.b) > 0:
		switch {
		case it.a[0] < it.b[0]:
			k, it.a = it.a[0], it.a[1:]
		case it.b[0] < it.a[0]:
			k, it.b = it.b[0], it.b[1:]
		default:
			k, it.a, it.b = it.a[0], it.a[1:], it.b[1:]
		}
	case len(it.a) > 0:
		k, it.a = it.a[0], it.a[1:]
	case len(it.b) > 0:
		k, it.b = it.b[0], it.b[1:]
	default:
		return "", false
	}
	if !strings.HasPrefix(k, it.prefix) {
		it.a, it.b = nil, nil
		return "", false
	}
	return k, true
}

func (t *table) size() int { return len(t.m) }

// emit writes the live entries in key order (the load-time compaction; no
// reader exists yet).
func (t *table) emit(rw *recordWriter) {
	t.refresh()
	it := newKeyIter(t.idx.base, t.idx.delta, "")
	for k, ok := it.next(); ok; k, ok = it.next() {
		if e, live := t.m[k]; live {
			rw.put(k, e.val, e.ver)
		}
	}
}
