package lease

import "errors"

// Errors of this package.
var (
	// ErrUnparseable is returned by [ParseRecord] and [Lease.Current] for a
	// lease value that is not a JSON object holding the three required
	// fields. TryAcquire treats such a lease as free: one corrupt write must
	// not wedge the fleet.
	ErrUnparseable = errors.New("lease: unparseable lease record")
)
