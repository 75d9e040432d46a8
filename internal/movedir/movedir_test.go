package movedir_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slipstream-kv/slipstream/internal/movedir"
)

func mkdir(t *testing.T, dir string, files ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOnto(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")

	// Absent destination.
	mkdir(t, src, "a")
	if err := movedir.Onto(src, filepath.Join(root, "absent")); err != nil {
		t.Fatalf("onto an absent destination: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "absent", "a")); err != nil || string(b) != "a" {
		t.Fatalf("moved file: %q, %v", b, err)
	}

	// Empty directory: replaced.
	mkdir(t, src, "b")
	empty := filepath.Join(root, "empty")
	mkdir(t, empty)
	if err := movedir.Onto(src, empty); err != nil {
		t.Fatalf("onto an empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "b")); err != nil {
		t.Fatal(err)
	}

	// Non-empty directory and file: refused, both untouched.
	mkdir(t, src, "c")
	full := filepath.Join(root, "full")
	mkdir(t, full, "keep")
	if err := movedir.Onto(src, full); err == nil {
		t.Fatal("onto a non-empty directory succeeded")
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := movedir.Onto(src, file); err == nil {
		t.Fatal("onto a file succeeded")
	}
	if des, _ := os.ReadDir(full); len(des) != 1 || des[0].Name() != "keep" {
		t.Fatalf("non-empty destination changed: %v", des)
	}
	if b, _ := os.ReadFile(file); string(b) != "f" {
		t.Fatal("file destination changed")
	}
	if _, err := os.Stat(filepath.Join(src, "c")); err != nil {
		t.Fatalf("source lost after a refused move: %v", err)
	}
}
