package fleet

import "errors"

// Errors of this package.
var (
	// ErrLoopGone is returned by an export round whose live loop is not
	// running (it stopped, or was never started), or stopped before it
	// answered the export. It comes wrapped with
	// slipstream.ErrOperationFailed and the loop's own error.
	ErrLoopGone = errors.New("fleet: watch loop is gone")
)
