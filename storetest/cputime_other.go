//go:build !unix

package storetest

import "time"

// CPUTime returns 0 on this platform.
func CPUTime() time.Duration { return 0 }
