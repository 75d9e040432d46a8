//go:build unix

package storetest

import "syscall"

// PageFaults returns the process's page faults so far (minor plus major),
// or 0 where unavailable. On virtual machines where touching fresh memory
// costs microseconds per page, benchmarks report them beside CPU time.
func PageFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Minflt) + int64(ru.Majflt)
}
