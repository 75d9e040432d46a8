package natskv

import (
	"time"
)

// Test-only access to internals, for the black-box tests in natskv_test.

// SetDropListed makes listings drop the messages of keys for which drop
// reports true, faking a short listing.
func SetDropListed(b *Bucket, drop func(key string) bool) { b.testDropListed = drop }

// SetStreamCheckInterval changes how often a running watch checks its
// stream's identity.
func SetStreamCheckInterval(b *Bucket, d time.Duration) { b.streamCheck = d }

// SetListed runs fn in every listing between the first read of the
// stream's state and the creation of the listing's consumer.
func SetListed(b *Bucket, fn func()) { b.testListed = fn }

// SetGuardInterval changes the floor guard's backstop period.
func SetGuardInterval(b *Bucket, d time.Duration) { b.guardInterval = d }
