package natskv

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/slipstream-kv/slipstream"
)

func TestStreamSequenceFromAck(t *testing.T) {
	cases := []struct {
		name    string
		subject string
		want    uint64
		ok      bool
	}{
		{"legacy_format", "$JS.ACK.KV_certs.cons.1.42.7.1700000000000000000.0", 42, true},
		{"modern_format_with_domain_and_account", "$JS.ACK.hub.AABBCC.KV_certs.cons.1.42.7.1700000000000000000.0", 42, true},
		{"modern_format_with_trailing_token", "$JS.ACK.hub.AABBCC.KV_certs.cons.1.99.7.1700000000000000000.0.rng", 99, true},
		{"ten_tokens_read_as_modern", "$JS.ACK.hub.AABBCC.KV_certs.cons.1.77.7.1700000000000000000", 77, true},
		{"empty", "", 0, false},
		{"not_an_ack", "not.an.ack.subject", 0, false},
		{"too_few_tokens", "$JS.ACK.too.few.tokens", 0, false},
		{"non_numeric_seq", "$JS.ACK.s.c.1.notnum.7.0.0", 0, false},
		{"wrong_prefix", "$JX.ACK.KV_certs.cons.1.42.7.1700000000000000000.0", 0, false},
		{"signed_seq", "$JS.ACK.s.c.1.+42.7.0.0", 0, false},
		{"overflowing_seq", "$JS.ACK.s.c.1.18446744073709551616.7.0.0", 0, false},
		{"max_seq", "$JS.ACK.s.c.1.18446744073709551615.7.0.0", 18446744073709551615, true},
		{"empty_seq", "$JS.ACK.s.c.1..7.0.0", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := streamSequenceFromAck(c.subject)
			if got != c.want || ok != c.ok {
				t.Fatalf("streamSequenceFromAck(%q) = %d, %v; want %d, %v", c.subject, got, ok, c.want, c.ok)
			}
		})
	}
	// ack_subject_last_token_is_not_the_sequence: the legacy sample ends in
	// pending 0; a parser that read the last token would return 0.
	if got, _ := streamSequenceFromAck("$JS.ACK.KV_certs.cons.1.42.7.1700000000000000000.0"); got == 0 {
		t.Fatal("the last token (pending) was read as the sequence")
	}
}

func TestStreamSequenceFromAckDoesNotAllocate(t *testing.T) {
	subjects := []string{
		"$JS.ACK.KV_certs.cons.1.42.7.1700000000000000000.0",
		"$JS.ACK.hub.AABBCC.KV_certs.cons.1.42.7.1700000000000000000.0",
		"$JS.ACK.s.c.1.notnum.7.0.0",
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, s := range subjects {
			streamSequenceFromAck(s)
		}
	})
	if allocs != 0 {
		t.Fatalf("streamSequenceFromAck allocates %v times per run", allocs)
	}
}

func BenchmarkStreamSequenceFromAck10k(b *testing.B) {
	subjects := [2]string{
		"$JS.ACK.KV_certs.cons.1.42.7.1700000000000000000.0",
		"$JS.ACK.hub.AABBCC.KV_certs.cons.1.42.7.1700000000000000000.0",
	}
	b.ReportAllocs()
	var sum uint64
	for b.Loop() {
		for i := range 10_000 {
			v, _ := streamSequenceFromAck(subjects[i&1])
			sum += v
		}
	}
	if sum == 0 {
		b.Fatal("nothing parsed")
	}
}

func TestCursorExpiredMatcher(t *testing.T) {
	for _, s := range []string{
		"consumer start sequence is too old",
		"first sequence is 42, requested 1",
		"sequence not found in stream",
		"requested revision is too old",
		"Consumer Start Sequence Too Old",
	} {
		if !looksCursorExpired(s) {
			t.Errorf("looksCursorExpired(%q) = false, want true", s)
		}
	}
	for _, s := range []string{"connection refused", "permission denied", "stream not found"} {
		if looksCursorExpired(s) {
			t.Errorf("looksCursorExpired(%q) = true, want false", s)
		}
	}
}

func TestDecodeMsg(t *testing.T) {
	const pre = "$KV.certs."
	const reply = "$JS.ACK.KV_certs.cons.1.42.7.1700000000000000000.0"
	rev42 := slipstream.VersionFromUint64(42)
	t.Run("put_without_operation_header", func(t *testing.T) {
		u, ok := decodeMsg(pre, "$KV.certs.node.a", reply, nil, []byte("v1"))
		if !ok || u.Op != slipstream.OpPut || u.Key != "node.a" || string(u.Value) != "v1" || u.Version != rev42 {
			t.Fatalf("got %+v, %v", u, ok)
		}
	})
	t.Run("delete_and_purge_markers", func(t *testing.T) {
		for op, want := range map[string]slipstream.Op{"DEL": slipstream.OpDelete, "PURGE": slipstream.OpPurge} {
			hdr := nats.Header{}
			hdr.Set(hdrOperation, op)
			u, ok := decodeMsg(pre, "$KV.certs.node.a", reply, hdr, nil)
			if !ok || u.Op != want || u.Key != "node.a" || u.Version != rev42 {
				t.Fatalf("%s: got %+v, %v", op, u, ok)
			}
		}
	})
	t.Run("server_limit_markers", func(t *testing.T) {
		for reason, want := range map[string]slipstream.Op{"MaxAge": slipstream.OpPurge, "Purge": slipstream.OpPurge, "Remove": slipstream.OpDelete, "Future": slipstream.OpPurge} {
			hdr := nats.Header{}
			hdr.Set(hdrMarkerReason, reason)
			u, ok := decodeMsg(pre, "$KV.certs.k", reply, hdr, nil)
			if !ok || u.Op != want {
				t.Fatalf("%s: got %+v, %v", reason, u, ok)
			}
			if !isMarker(hdr) {
				t.Fatalf("%s: isMarker = false", reason)
			}
		}
	})
	t.Run("outside_keyspace_is_skipped", func(t *testing.T) {
		if u, ok := decodeMsg(pre, "$KV.other.node.a", reply, nil, []byte("v")); ok {
			t.Fatalf("decoded %+v from another bucket", u)
		}
		if u, ok := decodeMsg(pre, "$KV.certs.", reply, nil, []byte("v")); ok {
			t.Fatalf("decoded %+v from the bare prefix", u)
		}
	})
	t.Run("without_reply_gets_unknown_version", func(t *testing.T) {
		u, ok := decodeMsg(pre, "$KV.certs.node.a", "", nil, []byte("v"))
		if !ok || u.Op != slipstream.OpPut || !u.Version.IsUnknown() {
			t.Fatalf("got %+v, %v; want a put with the unknown version", u, ok)
		}
		if _, has := u.Version.Uint64(); has {
			t.Fatal("unknown version has a uint64 view")
		}
	})
}

func TestClassifyCreateReply(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    createOutcome
		code    int
		descr   string
		wantErr bool
	}{
		{"raw_create_success_has_no_error", `{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"KV_x"},"created":"2026-01-01T00:00:00Z"}`, createCreated, 0, "", false},
		{"raw_create_swallows_stream_already_exists", `{"error":{"code":400,"err_code":10058,"description":"stream name already in use"}}`, createAlreadyExists, 0, "", false},
		{"raw_create_swallows_stream_limit", `{"error":{"code":400,"description":"maximum number of streams reached"}}`, createStreamLimit, 0, "", false},
		{"raw_create_propagates_unknown_error", `{"error":{"code":403,"description":"insufficient permissions"}}`, createFailed, 403, "insufficient permissions", true},
		{"raw_create_400_without_stream_limit_is_fatal", `{"error":{"code":400,"description":"invalid stream config"}}`, createFailed, 400, "invalid stream config", true},
		{"raw_create_unparseable_payload_is_treated_as_success", `not json at all`, createCreated, 0, "", false},
		{"raw_create_already_exists_when_10058_in_code_field", `{"error":{"code":10058}}`, createAlreadyExists, 0, "", false},
		{"raw_create_error_without_code_defaults_to_zero", `{"error":{"description":"mystery"}}`, createFailed, 0, "mystery", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, cerr := classifyCreateReply([]byte(c.body))
			if got != c.want {
				t.Fatalf("outcome = %d, want %d", got, c.want)
			}
			if (cerr != nil) != c.wantErr {
				t.Fatalf("error = %v, want error %v", cerr, c.wantErr)
			}
			if cerr != nil && (cerr.Code != c.code || cerr.Description != c.descr) {
				t.Fatalf("error = %+v, want {%d %q}", cerr, c.code, c.descr)
			}
		})
	}
	if _, cerr := classifyCreate(500, 0, ""); cerr == nil || cerr.Description != "unknown error" {
		t.Fatalf("missing description = %+v, want \"unknown error\"", cerr)
	}
}

func TestWatchFilters(t *testing.T) {
	cases := []struct {
		name    string
		scope   slipstream.Scope
		want    []string
		all     bool
		wantErr error
	}{
		{"all", slipstream.AllKeys(), []string{">"}, true, nil},
		{"empty_prefix_is_all", slipstream.Prefix(""), []string{">"}, true, nil},
		{"prefix", slipstream.Prefix("node."), []string{"node.>"}, false, nil},
		{"prefixes", slipstream.Prefixes("vpcB.", "vpcA."), []string{"vpcA.>", "vpcB.>"}, false, nil},
		{"empty_prefixes_watch_nothing", slipstream.Prefixes(), nil, false, nil},
		{"prefixes_with_empty_is_all", slipstream.Prefixes("a.", ""), []string{">"}, true, nil},
		{"covered_and_duplicate_prefixes_dropped", slipstream.Prefixes("a.b.", "a.", "a.", "ab."), []string{"a.>", "ab.>"}, false, nil},
		{"not_token_aligned", slipstream.Prefix("node"), nil, false, slipstream.ErrInvalidScope},
		{"wildcard", slipstream.Prefix("a.*."), nil, false, slipstream.ErrInvalidScope},
		{"empty_token", slipstream.Prefix("a.."), nil, false, slipstream.ErrInvalidScope},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, all, err := watchFilters(c.scope)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) || all != c.all {
				t.Fatalf("watchFilters = %q, %v, %v; want %q, %v", got, all, err, c.want, c.all)
			}
		})
	}
}

func TestSplitUserInfo(t *testing.T) {
	cases := []struct{ in, urls, user, pass, token string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", "", "", ""},
		{"nats://alice:s3cret@127.0.0.1:4222", "nats://127.0.0.1:4222", "alice", "s3cret", ""},
		// A user name without a password is a token, as nats.go reads it.
		{"nats://bob@h:1", "nats://h:1", "", "", "bob"},
		{"tls://t0k3n@h:1", "tls://h:1", "", "", "t0k3n"},
		{"nats://bob:@h:1", "nats://h:1", "bob", "", ""},
		{"carol:pw@h:1", "h:1", "carol", "pw", ""},
		{"nats://a:1@h1:1, nats://b:2@h2:2", "nats://h1:1,nats://h2:2", "a", "1", ""},
		{"nats://tok@h1:1,nats://a:1@h2:2", "nats://h1:1,nats://h2:2", "", "", "tok"},
	}
	for _, c := range cases {
		urls, user, pass, token := splitUserInfo(c.in)
		if urls != c.urls || user != c.user || pass != c.pass || token != c.token {
			t.Errorf("splitUserInfo(%q) = %q, %q, %q, %q; want %q, %q, %q, %q", c.in, urls, user, pass, token, c.urls, c.user, c.pass, c.token)
		}
	}
	for _, cfg := range []DialConfig{
		{URL: "nats://u:topsecret@h:1", Creds: "x", CredsFile: "/secret/path"},
		{URL: "nats://topsecret@h:1"},
		{User: "u", Password: "topsecret", Token: "topsecret", NKeyFile: "/secret/path", TLSKey: "/secret/path"},
	} {
		if s := cfg.String(); strings.Contains(s, "topsecret") || strings.Contains(s, "/secret/path") {
			t.Errorf("DialConfig.String leaks secrets: %s", s)
		}
	}
	if s := (DialConfig{URL: "tls://h:1", NKeyFile: "/k", TLSCA: "/ca.pem"}).String(); s != "url=tls://h:1 auth=nkey tls_ca=/ca.pem" {
		t.Errorf("DialConfig.String = %q", s)
	}
}

// TestResumeStartNotComputedByHand is a source-text guard:
// every resume start and every gap check goes through protocol, so
// the package's code must not add one to a revision itself.
func TestResumeStartNotComputedByHand(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	plusOne := regexp.MustCompile(`[\w)\]]\s*\+\s*1\b`)
	stringLit := regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "//")
			code = stringLit.ReplaceAllString(code, `""`)
			if plusOne.MatchString(code) {
				t.Errorf("%s:%d adds one by hand (use protocol.ResumeStart): %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}
