package main

import (
	"encoding/json"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestMain_UsageErrors(t *testing.T) {
	fold := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command given"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad flag", []string{"mirror", "-bogus"}, "flag provided but not defined: -bogus"},
		{"bad flag value", []string{"mirror", "-batch-max", "x"}, `invalid value "x" for flag -batch-max`},
		{"mirror without bucket", []string{"mirror", "-fold", fold}, "-bucket is required"},
		{"mirror without fold", []string{"mirror", "-bucket", "b"}, "-fold is required"},
		{"mirror bad bucket", []string{"mirror", "-bucket", "a.b", "-fold", fold}, `invalid -bucket "a.b"`},
		{"mirror bad backend", []string{"mirror", "-bucket", "b", "-fold", fold, "-backend", "bolt"}, `invalid -backend "bolt"`},
		{"mirror unaligned prefix", []string{"mirror", "-bucket", "b", "-fold", fold, "-prefix", "orders"}, `prefix "orders" does not end in "."`},
		{"mirror listen with nats", []string{"mirror", "-bucket", "b", "-fold", fold, "-nats", "nats://x:4222", "-listen", ":1"}, "do not go with -nats"},
		{"mirror zero batch", []string{"mirror", "-bucket", "b", "-fold", fold, "-batch-max", "0"}, "-batch-max must be > 0"},
		{"mirror argument", []string{"mirror", "-bucket", "b", "-fold", fold, "extra"}, `unexpected argument "extra"`},
		{"mirror log level", []string{"mirror", "-bucket", "b", "-fold", fold, "-log-level", "loud"}, `invalid -log-level "loud"`},
		{"mirror log format", []string{"mirror", "-bucket", "b", "-fold", fold, "-log-format", "xml"}, `invalid -log-format "xml"`},
		{"get without fold", []string{"get", "k"}, "-fold is required"},
		{"get without key", []string{"get", "-fold", fold}, "want exactly one KEY"},
		{"get two keys", []string{"get", "-fold", fold, "a", "b"}, "want exactly one KEY"},
		{"range two prefixes", []string{"range", "-fold", fold, "a.", "b."}, "want at most one PREFIX"},
		{"stat argument", []string{"stat", "-fold", fold, "x"}, `unexpected argument "x"`},
		{"kv no action", []string{"kv"}, "missing action"},
		{"kv bad action", []string{"kv", "list", "-bucket", "b"}, `unknown action "list"`},
		{"kv without bucket", []string{"kv", "get", "k"}, "-bucket is required"},
		{"kv put without key", []string{"kv", "put", "-bucket", "b"}, "wrong number of arguments"},
		{"kv get two keys", []string{"kv", "get", "-bucket", "b", "k1", "k2"}, "wrong number of arguments"},
		{"bench bad backend", []string{"bench", "-backend", "applog,bolt"}, `invalid -backend "bolt"`},
		{"bench zero keys", []string{"bench", "-keys", "0"}, "-keys must be > 0"},
		{"bench negative delta", []string{"bench", "-delta", "-1"}, "-delta must be >= 0"},
		{"bench negative live rate", []string{"bench", "-live-rate", "-5"}, "-live-rate must be >= 0"},
		{"bench zero live duration", []string{"bench", "-live-duration", "0s"}, "-live-duration must be > 0"},
		{"bench zero rounds", []string{"bench", "-rounds", "0"}, "-rounds must be > 0"},
		{"version argument", []string{"version", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runMain(t, "", tt.args...)
			if !errors.As(err, new(*usageError)) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if got := exitCode(err); got != 2 {
				t.Errorf("exit code = %d, want 2", got)
			}
			line := errorLine(err)
			if strings.Contains(line, "\n") {
				t.Errorf("error line spans lines: %q", line)
			}
			if !strings.Contains(line, tt.want) {
				t.Errorf("error line %q, want it to contain %q", line, tt.want)
			}
			if !strings.HasPrefix(line, "slipstream: ") || !strings.Contains(line, "-h')") {
				t.Errorf("error line %q lacks the prefix or the -h hint", line)
			}
		})
	}
}

func TestMain_Help(t *testing.T) {
	for _, cmd := range []string{"mirror", "get", "range", "stat", "kv", "bench", "version"} {
		t.Run(cmd, func(t *testing.T) {
			for _, h := range []string{"-h", "--help"} {
				stdout, _, err := runMain(t, "", cmd, h)
				if !errors.Is(err, flag.ErrHelp) || exitCode(err) != 0 || errorLine(err) != "" {
					t.Fatalf("%s %s: err = %v (exit %d), want flag.ErrHelp (exit 0, silent)", cmd, h, err, exitCode(err))
				}
				if !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "slipstream "+cmd) {
					t.Errorf("%s %s: usage missing from stdout:\n%s", cmd, h, stdout)
				}
				if cmd != "version" && !strings.Contains(stdout, "-log-level") {
					t.Errorf("%s %s: flags missing from usage:\n%s", cmd, h, stdout)
				}
			}
		})
	}
	t.Run("top level", func(t *testing.T) {
		stdout, _, err := runMain(t, "", "help")
		if exitCode(err) != 0 || !strings.Contains(stdout, "mirror") || !strings.Contains(stdout, "bench") {
			t.Fatalf("help: err %v, stdout:\n%s", err, stdout)
		}
		stdout, _, err = runMain(t, "", "help", "stat")
		if exitCode(err) != 0 || !strings.Contains(stdout, "slipstream stat") {
			t.Fatalf("help stat: err %v, stdout:\n%s", err, stdout)
		}
	})
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{usageErrorf("get", "x"), 2},
		{errors.New("boom"), 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if got := errorLine(errors.Join(errors.New("a"), errors.New("b"))); got != "slipstream: a; b" {
		t.Errorf("errorLine(joined) = %q", got)
	}
	if got := errorLine(errors.New("slipstream: key not found")); got != "slipstream: key not found" {
		t.Errorf("errorLine doubles the prefix: %q", got)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantFold string
	}{
		{[]string{"-fold", "d", "k"}, []string{"k"}, "d"},
		{[]string{"k", "-fold", "d"}, []string{"k"}, "d"},
		{[]string{"k", "--fold=d", "v"}, []string{"k", "v"}, "d"},
		{[]string{"-fold", "d", "--", "-k", "-fold"}, []string{"-k", "-fold"}, "d"},
		{[]string{"a", "--", "-fold"}, []string{"a", "-fold"}, ""},
	}
	for _, tt := range tests {
		var fold string
		fs := newFlagSet("t")
		fs.StringVar(&fold, "fold", "", "")
		pos, err := parseFlags("t", fs, tt.args, func() {})
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if !slices.Equal(pos, tt.wantPos) || fold != tt.wantFold {
			t.Errorf("%v: positional %q fold %q, want %q %q", tt.args, pos, fold, tt.wantPos, tt.wantFold)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, err := runMain(t, "", "version")
	if err != nil || !strings.HasPrefix(stdout, "slipstream ") || !strings.Contains(stdout, "go1.") {
		t.Fatalf("version: err %v, stdout %q", err, stdout)
	}
	stdout, _, err = runMain(t, "", "version", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var v buildVersion
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || v.Version == "" || !strings.HasPrefix(v.GoVersion, "go1.") {
		t.Fatalf("version -json: %q (%v)", stdout, err)
	}
}

func TestScopeOf(t *testing.T) {
	if !scopeOf(nil).IsAll() || !scopeOf([]string{"a.", ""}).IsAll() {
		t.Error("no prefix, or an empty one, must mean all keys")
	}
	s := scopeOf([]string{"a.", "b."})
	if s.IsAll() || !s.Contains("a.x") || !s.Contains("b.y") || s.Contains("c.z") {
		t.Errorf("scopeOf(a., b.) = %v", s)
	}
}
