package natskv

import (
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/slipstream-kv/slipstream"
)

// streamSequenceFromAck returns the stream sequence (the KV revision) carried
// in a JetStream ACK reply subject:
//
//	legacy (9 tokens):  $JS.ACK.<stream>.<consumer>.<delivered>.<stream_seq>.<consumer_seq>.<ts>.<pending>
//	modern (≥10):       $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<stream_seq>.<consumer_seq>.<ts>.<pending>[.<token>]
//
// It reports false for anything else, and never allocates. Unlike nats.go's
// own parser it accepts 10 tokens as modern, and it rejects a non-numeric or
// overflowing sequence instead of reading it as 0. The last token (pending)
// is never the sequence.
func streamSequenceFromAck(subject string) (uint64, bool) {
	const maxKept = 8 // tokens 0..7 are all we ever look at
	var starts, ends [maxKept]int
	n, pos := 0, 0
	for {
		end := len(subject)
		if j := strings.IndexByte(subject[pos:], '.'); j >= 0 {
			end = pos + j
		}
		if n < maxKept {
			starts[n], ends[n] = pos, end
		}
		n++
		if end == len(subject) {
			break
		}
		pos = end + len(".") // skip the separator
	}
	if n < 9 {
		return 0, false
	}
	tok := func(i int) string { return subject[starts[i]:ends[i]] }
	if tok(0) != "$JS" || tok(1) != "ACK" {
		return 0, false
	}
	idx := 5
	if n > 9 {
		idx = 7
	}
	return parseUint(tok(idx))
}

// parseUint parses a strict unsigned decimal, without allocating.
func parseUint(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// KV header names.
const (
	hdrOperation    = "KV-Operation"
	hdrMarkerReason = "Nats-Marker-Reason"
	hdrMsgSize      = "Nats-Msg-Size"
)

// decodeMsg turns a raw KV stream message into an Update. pre is the
// bucket's subject prefix ("$KV.<bucket>."); a subject outside it is not a
// key of the bucket and reports false. The version comes from the ACK reply
// subject; a missing or unparseable one gives the unknown version, never a
// fabricated 0 that a cursor would adopt.
func decodeMsg(pre, subject, reply string, hdr nats.Header, data []byte) (slipstream.Update, bool) {
	if len(subject) <= len(pre) || !strings.HasPrefix(subject, pre) {
		return slipstream.Update{}, false
	}
	u := slipstream.Update{Op: slipstream.OpPut, Key: subject[len(pre):], Value: data}
	if seq, ok := streamSequenceFromAck(reply); ok && seq != 0 {
		u.Version = slipstream.VersionFromUint64(seq)
	}
	if len(hdr) > 0 {
		switch op := hdr.Get(hdrOperation); op {
		case "DEL":
			u.Op, u.Value = slipstream.OpDelete, nil
		case "PURGE":
			u.Op, u.Value = slipstream.OpPurge, nil
		case "":
			// Server limit markers (per-key TTL, MaxAge with marker TTL).
			switch hdr.Get(hdrMarkerReason) {
			case "":
			case "Remove":
				u.Op, u.Value = slipstream.OpDelete, nil
			default: // "MaxAge", "Purge", and any reason a later server adds
				u.Op, u.Value = slipstream.OpPurge, nil
			}
		}
	}
	return u, true
}

// isMarker reports whether a message is a delete, purge or server limit
// marker rather than a value: it carries a KV-Operation header (any value)
// or a Nats-Marker-Reason header.
func isMarker(hdr nats.Header) bool {
	return len(hdr) > 0 && (hdr.Get(hdrOperation) != "" || hdr.Get(hdrMarkerReason) != "")
}
