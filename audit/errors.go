package audit

import "errors"

var (
	// ErrIncomplete is returned by [Auditor.Run] when the bucket listed
	// fewer distinct keys than it counts: a short listing would report live
	// keys as stale.
	ErrIncomplete = errors.New("audit: bucket listing incomplete")
	// ErrInvalidConfig is returned by [Auditor.Run] when Bucket or Fold is
	// missing.
	ErrInvalidConfig = errors.New("audit: invalid configuration")
)
