package poll_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/poll"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	poll.Until(t, time.Minute, func() (bool, string) { return calls.Add(1) == 3, "third call" })
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

// fatalTB records Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

func TestUntilFailsAfterTheTimeout(t *testing.T) {
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("recovered %v, want the Fatalf", r)
			}
		}()
		poll.True(f, 20*time.Millisecond, "never", func() bool { return false })
	}()
	if f.msg == "" {
		t.Fatal("Until returned without failing")
	}
}
