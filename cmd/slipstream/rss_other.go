//go:build !unix

package main

import "time"

func resetPeakRSS() bool { return false }

func peakRSS() int64 { return 0 }

func cpuTime() time.Duration { return 0 }

func pageFaults() int64 { return 0 }
