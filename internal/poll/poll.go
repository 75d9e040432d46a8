// Package poll waits in tests for a condition that has no event to wait on
// (a process's state seen from outside, a server's view of a stream): it
// polls, with a growing delay, until the condition holds or a deadline
// passes. Tests that can wait on an event (a channel, a callback) do that
// instead.
package poll

import (
	"testing"
	"time"
)

// Until calls cond, every 5 ms at first and then less often (up to every
// 200 ms), until it reports true. When timeout passes first it fails the
// test with what cond last said.
func Until(t testing.TB, timeout time.Duration, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, why)
		}
		time.Sleep(delay)
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// True is Until for a condition with nothing to say but what it waits for.
func True(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Until(t, timeout, func() (bool, string) { return cond(), what })
}
