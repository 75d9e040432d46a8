//go:build unix && !darwin

package main

// maxrssBytes converts getrusage's maxrss (KiB outside macOS) to bytes.
func maxrssBytes(v int64) int64 { return v << 10 }
