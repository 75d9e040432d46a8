//go:build !unix

package storetest

// PageFaults returns 0 on this platform.
func PageFaults() int64 { return 0 }
