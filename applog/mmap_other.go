//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package applog

import "os"

// mapLog does not map the log here: reads use pread.
func mapLog(*os.File, int64) []byte { return nil }

func unmapLog([]byte) {}
