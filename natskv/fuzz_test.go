package natskv

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// seedLines adds every line of a testdata file to the fuzz corpus.
func seedLines(f *testing.F, name string) []string {
	f.Helper()
	file, err := os.Open("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	var lines []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		f.Fatal(err)
	}
	if len(lines) == 0 {
		f.Fatalf("testdata/%s has no seeds", name)
	}
	return lines
}

// ackReference is the ACK-subject rule written the obvious, allocating way.
func ackReference(subject string) (uint64, bool) {
	toks := strings.Split(subject, ".")
	if len(toks) < 9 || toks[0] != "$JS" || toks[1] != "ACK" {
		return 0, false
	}
	tok := toks[5]
	if len(toks) > 9 {
		tok = toks[7]
	}
	if tok == "" || strings.TrimLeft(tok, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

func FuzzStreamSequenceFromAck(f *testing.F) {
	for _, s := range seedLines(f, "ack_subjects.txt") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		got, ok := streamSequenceFromAck(subject)
		want, wantOK := ackReference(subject)
		if got != want || ok != wantOK {
			t.Fatalf("streamSequenceFromAck(%q) = %d, %v; reference %d, %v", subject, got, ok, want, wantOK)
		}
	})
}

func FuzzDecodeMsg(f *testing.F) {
	for _, s := range seedLines(f, "ack_subjects.txt") {
		f.Add("$KV.certs.node.a", s, "DEL", "", []byte("v1"))
		f.Add("$KV.certs.node.a", s, "", "MaxAge", []byte{})
		f.Add("$KV.other.node.a", s, "PURGE", "", []byte("x"))
	}
	const pre = "$KV.certs."
	f.Fuzz(func(t *testing.T, subject, reply, op, reason string, data []byte) {
		hdr := nats.Header{}
		if op != "" {
			hdr.Set(hdrOperation, op)
		}
		if reason != "" {
			hdr.Set(hdrMarkerReason, reason)
		}
		u, ok := decodeMsg(pre, subject, reply, hdr, data)
		if !ok {
			if strings.HasPrefix(subject, pre) && len(subject) > len(pre) {
				t.Fatalf("a key subject %q was skipped", subject)
			}
			return
		}
		if u.Key != subject[len(pre):] {
			t.Fatalf("key %q from subject %q", u.Key, subject)
		}
		seq, seqOK := ackReference(reply)
		if rev, has := u.Version.Uint64(); has {
			if !seqOK || rev != seq || rev == 0 {
				t.Fatalf("version %d from reply %q (reference %d, %v)", rev, reply, seq, seqOK)
			}
		} else if !u.Version.IsUnknown() {
			t.Fatalf("version %v is neither a revision nor unknown", u.Version)
		} else if seqOK && seq != 0 {
			t.Fatalf("reply %q carries revision %d but the version is unknown", reply, seq)
		}
		if u.Op != 1 && len(u.Value) != 0 {
			t.Fatalf("a %v marker carries a value", u.Op)
		}
	})
}

func FuzzClassifyCreateReply(f *testing.F) {
	for _, s := range seedLines(f, "create_replies.txt") {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		outcome, cerr := classifyCreateReply(body)
		if (outcome == createFailed) != (cerr != nil) {
			t.Fatalf("outcome %v with error %v", outcome, cerr)
		}
		if cerr != nil && cerr.Description == "" {
			t.Fatal("a failure without a description")
		}
	})
}
