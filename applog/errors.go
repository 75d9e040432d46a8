package applog

import (
	"errors"
	"fmt"
)

var (
	// ErrPoisoned is returned by every [Writer] (and so [Store]) write after
	// a failure that left the writer unable to append safely: a failed
	// reopen after a compaction's rename, a failed write or fsync. Close the
	// store and open it again; the log on disk is intact up to its last
	// checkpoint.
	ErrPoisoned = errors.New("applog: writer poisoned")
	// ErrReadOnly is returned by Apply and ExportTo on a store opened with
	// [OpenReadOnly].
	ErrReadOnly = errors.New("applog: store is read-only")
)

// FormatError reports why a log file failed to load, and where. Err is
// [slipstream.ErrCorrupt] (a checksum mismatch in the middle of the log) or
// [slipstream.ErrInvalidFormat] (bad header, unknown record type, oversized
// length field, non-UTF-8 key, a zero hole before valid records). A load that
// fails with a FormatError never modifies the file.
type FormatError struct {
	Path   string // the log file
	Offset int64  // byte offset of the offending record (0 for the header)
	Reason string // what was wrong, e.g. "bad magic"
	Err    error  // slipstream.ErrCorrupt or slipstream.ErrInvalidFormat
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("applog: %s: %v: %s at offset %d", e.Path, e.Err, e.Reason, e.Offset)
}

// Unwrap returns the sentinel Err.
func (e *FormatError) Unwrap() error { return e.Err }
