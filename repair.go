package slipstream

import (
	"context"
	"fmt"
	"slices"
)

// RecordReader reads one key's latest record from a bucket. A [Follower]
// uses it to repair keys an audit found divergent.
//
// LastRecord returns the key's latest record as an Update with its version:
// an OpPut with the value (an empty-value CAS tombstone included), or an
// OpDelete or OpPurge marker; false when the key has no record at all.
type RecordReader interface {
	LastRecord(ctx context.Context, key string) (Update, bool, error)
}

// RepairInfo describes one repair.
type RepairInfo struct {
	Keys    int // keys asked for
	Folded  int // synthetic updates folded: puts of the value read, deletes of keys read absent
	Skipped int // keys left to the watch: a live update reached them, or the record read is still in flight
}

// Repair folds the bucket's current state of keys into the running
// Follower's Store, through its loop: each key's latest record is re-read
// from src and folded as a synthetic update, a put of the value read at the
// revision read (so the fold records it), or a delete when the key's latest
// record is a marker or it has none. The repair's updates pass through
// Filter and Apply like any others, after everything received before them.
// They never move the cursor.
//
// A live update wins over the repair, and the repair never runs ahead of the
// watch. The loop starts watching the keys before they are read; at the
// fold, a key is left to the watch (counted in RepairInfo.Skipped) when a
// live update reached it since, or when the record read is newer than the
// applied cursor (it is in flight, and the watch delivers it after the
// older updates of the key it has not delivered yet). So a key the repair
// folds is the key's latest state as of the applied cursor, and every
// update the loop receives after the fold is newer: no repair leaves a key
// older than the watch made it, even for a moment.
//
// Repair is meant for the keys an audit found divergent. It returns an error
// wrapping [ErrUnsupported] when the Follower has no Store, [ErrNotRunning]
// when Run is not active or stops (or restarts) before the fold, src's error
// (nothing is folded), ctx.Err() when ctx ends first, and an error that also
// stops Run when the fold fails fatally. Several repairs may run at once.
func (f *Follower) Repair(ctx context.Context, src RecordReader, keys []string) (RepairInfo, error) {
	info := RepairInfo{Keys: len(keys)}
	marks := &repairMarks{touched: make(map[string]bool, len(keys))}
	for _, k := range keys {
		marks.touched[k] = false
	}
	if _, err := ask(ctx, f, func(l *loop) (struct{}, error, bool) { return struct{}{}, l.watchKeys(marks), false }); err != nil {
		return info, err
	}
	folded := false
	defer func() {
		if !folded {
			// Stop watching the keys; a Run that ended took them along.
			ask(context.WithoutCancel(ctx), f, func(l *loop) (struct{}, error, bool) {
				l.unwatchKeys(marks)
				return struct{}{}, nil, false
			})
		}
	}()
	updates := make([]Update, 0, len(keys))
	for _, k := range keys {
		u, err := ReadRecord(ctx, src, k)
		if err != nil {
			return info, err
		}
		updates = append(updates, u)
	}
	res, err := ask(ctx, f, func(l *loop) (RepairInfo, error, bool) { return l.repair(marks, updates) })
	// Given up on (ctx ended) before the loop served it: unwatch.
	folded = err == nil || ctx.Err() == nil
	res.Keys = info.Keys
	return res, err
}

// repairMarks are the keys of one repair, and whether a live update reached
// each since the loop began watching them. Only the loop touches them.
type repairMarks struct {
	touched map[string]bool
}

// watchKeys starts marking the keys of a repair that live updates reach.
func (l *loop) watchKeys(m *repairMarks) error {
	if l.f.Store == nil {
		return fmt.Errorf("%w: the follower has no store to repair", ErrUnsupported)
	}
	l.repairs = append(l.repairs, m)
	return nil
}

// unwatchKeys forgets a repair; it reports whether the repair was watched
// by this Run.
func (l *loop) unwatchKeys(m *repairMarks) bool {
	i := slices.Index(l.repairs, m)
	if i < 0 {
		return false
	}
	l.repairs = slices.Delete(l.repairs, i, i+1)
	return true
}

// touch marks key in every running repair that watches it. Called for each
// update the watch delivers while a repair runs.
func (l *loop) touch(key string) {
	for _, m := range l.repairs {
		if _, ok := m.touched[key]; ok {
			m.touched[key] = true
		}
	}
}

// ReadRecord returns the synthetic update that sets key to its latest
// record in src: a put of the value at its revision, or a delete (at the
// marker's revision, or the unknown version when the key has no record).
func ReadRecord(ctx context.Context, src RecordReader, key string) (Update, error) {
	u, ok, err := src.LastRecord(ctx, key)
	if err != nil {
		return Update{}, fmt.Errorf("repair: read %q: %w", key, err)
	}
	if !ok {
		return Delete(key, Version{}), nil
	}
	if u.Op != OpPut {
		return Delete(key, u.Version), nil
	}
	return Put(key, u.Value, u.Version), nil
}

// repair folds the repair's updates for the keys no live update reached
// and whose record is not in flight, after everything received so far.
func (l *loop) repair(m *repairMarks, updates []Update) (RepairInfo, error, bool) {
	var info RepairInfo
	if !l.unwatchKeys(m) {
		return info, fmt.Errorf("%w: the follower restarted during the repair", ErrNotRunning), false
	}
	// Flushed first, the applied cursor covers every update received.
	if err := l.flush(l.ctx); err != nil {
		return info, err, true
	}
	applied, known := l.applied.Uint64()
	fold := updates[:0:0]
	for _, u := range updates {
		r, positioned := u.Version.Uint64()
		if m.touched[u.Key] || (positioned && (!known || r > applied)) {
			info.Skipped++
			continue
		}
		fold = append(fold, u)
	}
	if len(fold) == 0 {
		return info, nil, false
	}
	if err := l.foldSynthetic(fold); err != nil {
		return info, err, true
	}
	info.Folded = len(fold)
	l.log.Info("repair folded", LogKeyKeys, len(fold), "skipped", info.Skipped, LogKeyCursor, l.applied.String())
	return info, nil, false
}
