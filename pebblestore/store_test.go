package pebblestore_test

import (
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/pebblestore"
	"github.com/slipstream-kv/slipstream/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func opener(opts pebblestore.Options) storetest.Opener {
	return func(t *testing.T, dir string) slipstream.Store {
		t.Helper()
		opts.Logger = quiet
		s, err := pebblestore.Open(dir, &opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, opener(pebblestore.Options{}))
}

func TestConformanceSyncMode(t *testing.T) {
	storetest.Run(t, opener(pebblestore.Options{Sync: true}))
}

func TestLocking(t *testing.T) {
	storetest.RunLocking(t, func(dir string) (slipstream.Store, error) {
		return pebblestore.Open(dir, &pebblestore.Options{Logger: quiet})
	})
}

func mustOpen(t *testing.T, dir string, opts pebblestore.Options) *pebblestore.Store {
	t.Helper()
	opts.Logger = quiet
	s, err := pebblestore.Open(dir, &opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fold(t *testing.T, s slipstream.Store, ups []slipstream.Update) {
	t.Helper()
	for i := 0; i < len(ups); i += 3 {
		chunk := ups[i:min(i+3, len(ups))]
		if err := s.Apply(chunk, slipstream.CursorAt(chunk[len(chunk)-1].Version)); err != nil {
			t.Fatal(err)
		}
	}
}

func state(t *testing.T, s slipstream.Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := s.ForEachInRange("", func(e slipstream.Entry) error {
		m[e.Key] = string(e.Value) + "@" + e.Version.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m["#cursor"] = s.Cursor().String()
	return m
}

var expected = map[string]string{"node.a": "v1b@4", "node.c": "v3@6", "svc.x": "sx@3", "svc.y": "sy@7", "#cursor": "7"}

func TestSettlePreservesState(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, pebblestore.Options{})
	fold(t, s, storetest.Fixture())
	// Enough data to leave sstables behind after the flush.
	var batch []slipstream.Update
	for i := range 5000 {
		batch = append(batch, slipstream.Put("bulk."+strings.Repeat("x", i%7)+string(rune('a'+i%26))+itoa(i), []byte(strings.Repeat("v", 100)), slipstream.VersionFromUint64(uint64(8+i))))
	}
	if err := s.Apply(batch, slipstream.CursorFromUint64(8+5000)); err != nil {
		t.Fatal(err)
	}
	before := state(t, s)
	if err := s.Settle(); err != nil {
		t.Fatal(err)
	}
	if after := state(t, s); !maps.Equal(before, after) {
		t.Fatal("Settle changed the state")
	}
	if n, err := s.Len(); err != nil || n != 5004 {
		t.Fatalf("Len = %d, %v", n, err)
	}
	s.Close()
	s = mustOpen(t, dir, pebblestore.Options{})
	defer s.Close()
	if after := state(t, s); !maps.Equal(before, after) {
		t.Fatal("state after Settle and reopen differs")
	}
}

func itoa(i int) string {
	return string([]byte{byte('0' + i/1000%10), byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

func TestNoSyncTailIsConsistentAndIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, pebblestore.Options{Sync: false})
	fold(t, s, storetest.Fixture())
	s.Close()
	s = mustOpen(t, dir, pebblestore.Options{})
	if got := state(t, s); !maps.Equal(got, expected) {
		t.Fatalf("after reopen %v", got)
	}
	s.Close()
	s = mustOpen(t, dir, pebblestore.Options{})
	defer s.Close()
	// Re-applying the tail (what a resume after a lost tail does) is
	// harmless.
	fold(t, s, storetest.Fixture()[5:])
	if got := state(t, s); !maps.Equal(got, expected) {
		t.Fatalf("after refolding revs 6-7: %v", got)
	}
}

func TestSyncModeRoundTrips(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, pebblestore.Options{Sync: true})
	fold(t, s, storetest.Fixture())
	s.Close()
	s = mustOpen(t, dir, pebblestore.Options{Sync: true})
	defer s.Close()
	if got := state(t, s); !maps.Equal(got, expected) {
		t.Fatalf("after reopen %v", got)
	}
}

// rawSet writes a key directly into the database, bypassing the store.
func rawSet(t *testing.T, dir string, key, value []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(f string, a ...any) {
	panic(f)
}

func TestOpenRejectsCorruptedCursor(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, pebblestore.Options{})
	fold(t, s, storetest.Fixture())
	s.Close()
	rawSet(t, dir, []byte("\x00cursor"), []byte("0123456789A")) // 11 bytes
	_, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet})
	if !errors.Is(err, slipstream.ErrInvalidFormat) || !strings.Contains(err.Error(), "cursor") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open = %v, want ErrInvalidFormat about the cursor naming %s", err, dir)
	}
	// The failed open released the lock and the database.
	rawSet(t, dir, []byte("\x00cursor"), []byte{0, 0, 0, 0, 0, 0, 0, 7})
	s = mustOpen(t, dir, pebblestore.Options{})
	defer s.Close()
	if got := state(t, s); !maps.Equal(got, expected) {
		t.Fatalf("state %v", got)
	}
}

func TestUndecodableStoredDataIsInvalidFormat(t *testing.T) {
	tests := map[string]struct{ key, value []byte }{
		"version length over 10": {[]byte("\x01bad"), []byte{11, 1, 2}},
		"truncated version":      {[]byte("\x01bad"), []byte{8, 1, 2}},
		"empty record":           {[]byte("\x01bad"), nil},
		"non-UTF-8 key":          {[]byte("\x01b\xff"), []byte{0}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			rawSet(t, dir, tt.key, tt.value)
			s := mustOpen(t, dir, pebblestore.Options{})
			defer s.Close()
			err := s.ForEachInRange("", func(slipstream.Entry) error { return nil })
			if !errors.Is(err, slipstream.ErrInvalidFormat) {
				t.Fatalf("scan = %v, want ErrInvalidFormat", err)
			}
			if utf8Key := string(tt.key[1:]); name != "non-UTF-8 key" {
				if _, _, err := s.Get(utf8Key); !errors.Is(err, slipstream.ErrInvalidFormat) {
					t.Fatalf("Get = %v, want ErrInvalidFormat", err)
				}
			}
		})
	}
}

func TestApplyRefusesNonUTF8Key(t *testing.T) {
	s := mustOpen(t, t.TempDir(), pebblestore.Options{})
	defer s.Close()
	err := s.Apply([]slipstream.Update{slipstream.Put("ok", nil, slipstream.VersionFromUint64(1)), slipstream.Put("\xff", nil, slipstream.VersionFromUint64(2))}, slipstream.CursorFromUint64(2))
	if !errors.Is(err, slipstream.ErrInvalidFormat) {
		t.Fatalf("Apply = %v", err)
	}
	if n, _ := s.Len(); n != 0 || !s.Cursor().IsNone() {
		t.Fatal("a refused batch was partly applied")
	}
}

func TestOpenRefusesForeignDirectories(t *testing.T) {
	for name, files := range map[string][]string{
		"append-log fold": {"fold.snap", "LOCK"},
		"other files":     {"notes.txt"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range files {
				os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
			}
			_, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet})
			if !errors.Is(err, slipstream.ErrInvalidFormat) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Open = %v, want ErrInvalidFormat naming %s", err, dir)
			}
			des, _ := os.ReadDir(dir)
			if len(des) != len(files) {
				t.Fatalf("Open changed the directory: %v", des)
			}
		})
	}
}

// ExportTo must include commits that pebble still buffers in the process
// under NoSync (the checkpoint flushes the WAL), and the copy must reopen
// at the live cursor.
func TestExportIncludesUnsyncedCommits(t *testing.T) {
	s := mustOpen(t, t.TempDir(), pebblestore.Options{Sync: false})
	defer s.Close()
	for i := range 200 {
		v := slipstream.VersionFromUint64(uint64(i + 1))
		if err := s.Apply([]slipstream.Update{slipstream.Put("k"+itoa(i%50), []byte(itoa(i)), v)}, slipstream.CursorAt(v)); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(t.TempDir(), "export")
	exp, err := s.ExportTo(dest)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Backend != "pebble" || exp.BackendVersion != itoaFMV() || exp.Cursor != slipstream.CursorFromUint64(200) {
		t.Fatalf("export %+v", exp)
	}
	if !slices.ContainsFunc(exp.Files, func(f string) bool { return strings.HasPrefix(f, "MANIFEST-") }) {
		t.Fatalf("export files %v lack a MANIFEST", exp.Files)
	}
	live := state(t, s)
	e := mustOpen(t, dest, pebblestore.Options{})
	defer e.Close()
	if got := state(t, e); !maps.Equal(got, live) {
		t.Fatal("export differs from the live fold")
	}
}

func itoaFMV() string {
	return strconvItoa(int(pebble.FormatNewest))
}

func strconvItoa(i int) string { return strconv.Itoa(i) }
