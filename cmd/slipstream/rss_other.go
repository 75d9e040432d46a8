//go:build !unix

package main

func resetPeakRSS() bool { return false }

func peakRSS() int64 { return 0 }
