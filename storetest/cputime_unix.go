//go:build unix

package storetest

import (
	"syscall"
	"time"
)

// CPUTime returns the user plus system CPU time the process has consumed,
// or 0 where unavailable. Benchmarks report throughput per CPU second
// beside wall-clock figures, which a busy shared machine distorts.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
