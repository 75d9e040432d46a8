package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
)

var allBackends = []string{backendAppLog, backendPebble}

// makeFold creates a fold of backend at a fresh directory holding the puts
// of kv (key → value), revisions 1… in key order, then deletes "gone" at the
// next revision. It returns the directory and the cursor.
func makeFold(t testing.TB, backend string, kv ...string) (string, uint64) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fold")
	f, err := openFold(dir, backend, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	var batch []slipstream.Update
	rev := uint64(0)
	for i := 0; i+1 < len(kv); i += 2 {
		rev++
		batch = append(batch, slipstream.Put(kv[i], []byte(kv[i+1]), slipstream.VersionFromUint64(rev)))
	}
	rev++
	batch = append(batch, slipstream.Put("gone", []byte("x"), slipstream.VersionFromUint64(rev)))
	rev++
	batch = append(batch, slipstream.Delete("gone", slipstream.VersionFromUint64(rev)))
	if err := f.Apply(batch, slipstream.CursorFromUint64(rev)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, rev
}

var sample = []string{"a.1", "one", "a.2", "two", "b.1", "three", "empty", ""}

func TestDetectBackend(t *testing.T) {
	for _, backend := range allBackends {
		dir, _ := makeFold(t, backend, sample...)
		got, err := detectBackend(dir)
		if err != nil || got != backend {
			t.Errorf("detectBackend(%s fold) = %q, %v", backend, got, err)
		}
		// An existing fold keeps its backend; naming the other one fails.
		other := backendPebble
		if backend == backendPebble {
			other = backendAppLog
		}
		if _, err := openFold(dir, other, discardLogger()); !errors.Is(err, errBackendMismatch) {
			t.Errorf("openFold(%s fold, %s) = %v, want a backend mismatch", backend, other, err)
		}
	}
	if got, err := detectBackend(filepath.Join(t.TempDir(), "missing")); got != "" || err != nil {
		t.Errorf("missing dir: %q, %v", got, err)
	}
	junk := t.TempDir()
	os.WriteFile(filepath.Join(junk, "notes.txt"), []byte("x"), 0o644)
	if _, err := detectBackend(junk); err == nil {
		t.Error("a directory of unrelated files must not pass as a fold")
	}
}

func TestGet(t *testing.T) {
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			dir, _ := makeFold(t, backend, sample...)
			stdout, _, err := runMain(t, "", "get", "-fold", dir, "a.2")
			if err != nil || stdout != "two" {
				t.Fatalf("get a.2 = %q, %v", stdout, err)
			}
			// Flags after the key, JSON form.
			stdout, _, err = runMain(t, "", "get", "b.1", "-fold", dir, "-json")
			if err != nil {
				t.Fatal(err)
			}
			var l rangeLine
			if err := json.Unmarshal([]byte(stdout), &l); err != nil || l.Key != "b.1" || string(l.Value) != "three" || l.Revision != 3 {
				t.Fatalf("get -json = %q (%v)", stdout, err)
			}
			// An empty value is present, and empty.
			stdout, _, err = runMain(t, "", "get", "-fold", dir, "empty")
			if err != nil || stdout != "" {
				t.Fatalf("get empty = %q, %v", stdout, err)
			}
			for _, key := range []string{"gone", "nope"} {
				_, _, err = runMain(t, "", "get", "-fold", dir, key)
				if !errors.Is(err, slipstream.ErrNotFound) || exitCode(err) != 1 {
					t.Errorf("get %s: %v (exit %d), want not found, exit 1", key, err, exitCode(err))
				}
			}
		})
	}
	_, _, err := runMain(t, "", "get", "-fold", filepath.Join(t.TempDir(), "none"), "k")
	if !errors.Is(err, errNoFold) || exitCode(err) != 1 {
		t.Errorf("get on a missing fold: %v", err)
	}
}

func TestRange(t *testing.T) {
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			dir, _ := makeFold(t, backend, sample...)
			stdout, _, err := runMain(t, "", "range", "-fold", dir)
			if err != nil {
				t.Fatal(err)
			}
			lines := parseLines(t, strings.NewReader(stdout))
			want := []rangeLine{
				{"a.1", []byte("one"), 1}, {"a.2", []byte("two"), 2}, {"b.1", []byte("three"), 3}, {"empty", []byte{}, 4},
			}
			if d := diffLines(lines, want); d != "" || len(lines) != len(want) {
				t.Fatalf("range: %s\n%s", d, stdout)
			}
			if !strings.Contains(stdout, `{"key":"empty","value":"","revision":4}`) {
				t.Errorf("an empty value must encode as \"\":\n%s", stdout)
			}
			stdout, _, err = runMain(t, "", "range", "a.", "-fold", dir)
			if err != nil {
				t.Fatal(err)
			}
			if lines := parseLines(t, strings.NewReader(stdout)); len(lines) != 2 || lines[0].Key != "a.1" || lines[1].Key != "a.2" {
				t.Fatalf("range a.: %s", stdout)
			}
		})
	}
}

func TestStat(t *testing.T) {
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			dir, cursor := makeFold(t, backend, sample...)
			stdout, _, err := runMain(t, "", "stat", "-fold", dir, "-json")
			if err != nil {
				t.Fatal(err)
			}
			var st foldStat
			if err := json.Unmarshal([]byte(stdout), &st); err != nil {
				t.Fatal(err)
			}
			if st.Backend != backend || st.Cursor != cursor || st.Keys != 4 || st.Bytes <= 0 || st.ReadOnly {
				t.Fatalf("stat = %+v, want backend %s cursor %d keys 4", st, backend, cursor)
			}
			stdout, _, err = runMain(t, "", "stat", "-fold", dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"backend:  " + backend, "cursor:   6", "keys:     4"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("stat lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

// A fold held by a running mirror: applog is read read-only (and says so),
// pebble is refused with a pointer to --http.
func TestOfflineQueriesOnHeldFold(t *testing.T) {
	t.Run(backendAppLog, func(t *testing.T) {
		dir, _ := makeFold(t, backendAppLog, sample...)
		held, err := applog.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		// The holder moves on after the reader's snapshot would be stale.
		if err := held.Apply([]slipstream.Update{slipstream.Put("c.1", []byte("new"), slipstream.VersionFromUint64(7))}, slipstream.CursorFromUint64(7)); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := runMain(t, "", "get", "-fold", dir, "c.1")
		if err != nil || stdout != "new" {
			t.Fatalf("get on a held applog fold = %q, %v", stdout, err)
		}
		if !strings.Contains(stderr, "held by a running mirror") || !strings.Contains(stderr, "read-only") {
			t.Errorf("stderr does not say the fold is held: %q", stderr)
		}
		stdout, _, err = runMain(t, "", "stat", "-fold", dir, "-json")
		var st foldStat
		if err != nil || json.Unmarshal([]byte(stdout), &st) != nil || !st.ReadOnly || st.Cursor != 7 || st.Keys != 5 {
			t.Fatalf("stat on a held applog fold = %q, %v", stdout, err)
		}
	})
	t.Run(backendPebble, func(t *testing.T) {
		dir, _ := makeFold(t, backendPebble, sample...)
		held, err := openFold(dir, backendPebble, discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		for _, args := range [][]string{{"get", "-fold", dir, "a.1"}, {"range", "-fold", dir}, {"stat", "-fold", dir}} {
			_, _, err := runMain(t, "", args...)
			if !errors.Is(err, errFoldHeld) || exitCode(err) != 1 {
				t.Errorf("%v on a held pebble fold: %v, want errFoldHeld", args, err)
			}
			if !strings.Contains(errorLine(err), "held by a running mirror (use --http)") {
				t.Errorf("%v: message %q", args, errorLine(err))
			}
		}
	})
}
