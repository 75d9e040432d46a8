package audit

import (
	"context"
	"fmt"

	"github.com/slipstream-kv/slipstream"
)

// repairBatch is the number of repaired keys folded per Store.Apply.
const repairBatch = 1000

// RepairStore converges a fold that no follower holds with its bucket after
// the audit rep. Every divergent key's latest record is re-read from r and
// folded: a put of the value read, at its revision, or a delete when the
// record is a marker or there is none. The updates are folded at the fold's own
// cursor, which does not move.
//
// When rep found the fold's cursor past the server's last sequence (the
// bucket was recreated, or restored from an older copy), revisions no longer
// identify values, so equal revisions prove nothing: the cursor is then
// rewound to none, after the keys are repaired, and the next follower
// re-lists the whole scope.
//
// A read or fold error stops the repair and is returned with what was
// folded so far; folding is idempotent, so running it again is safe. Use a
// running follower's Repair instead for a fold a follower holds.
func RepairStore(ctx context.Context, st slipstream.Store, r slipstream.RecordReader, rep Report) (slipstream.RepairInfo, error) {
	keys := rep.Keys()
	info := slipstream.RepairInfo{Keys: len(keys)}
	batch := make([]slipstream.Update, 0, min(len(keys), repairBatch))
	flush := func(cursor slipstream.Cursor) error {
		if err := st.Apply(batch, cursor); err != nil {
			return fmt.Errorf("audit: repair: fold: %w", err)
		}
		info.Folded += len(batch)
		clear(batch)
		batch = batch[:0]
		return nil
	}
	for _, k := range keys {
		u, err := slipstream.ReadRecord(ctx, r, k)
		if err != nil {
			return info, fmt.Errorf("audit: %w", err)
		}
		batch = append(batch, u)
		if len(batch) == repairBatch {
			if err := flush(st.Cursor()); err != nil {
				return info, err
			}
		}
	}
	cursor := st.Cursor()
	if rep.CursorAhead() {
		cursor = slipstream.Cursor{}
	}
	if len(batch) > 0 || rep.CursorAhead() {
		if err := flush(cursor); err != nil {
			return info, err
		}
	}
	return info, nil
}
