package objstore

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/slipstream-kv/slipstream"
	"lukechampine.com/blake3"
)

const (
	// PointerSuffix ends the name of a key's pointer object.
	PointerSuffix = ".manifest.json"
	// PayloadsSuffix ends the name of the directory holding a key's payloads.
	PayloadsSuffix = ".payloads"
	// MaxPointerSize is the largest pointer (manifest) the transport reads or
	// writes, in bytes.
	MaxPointerSize = 1 << 20
	// PointerSwapAttempts bounds the read-check-write rounds of one pointer
	// swap.
	PointerSwapAttempts = 8
)

// joinName joins the non-empty '/'-separated segments of parts with '/'.
func joinName(parts ...string) string {
	var segs []string
	for _, p := range parts {
		for _, s := range strings.Split(p, "/") {
			if s != "" {
				segs = append(segs, s)
			}
		}
	}
	return strings.Join(segs, "/")
}

// checkSegments refuses what does not map onto the same object names in every
// store and implementation: characters outside [A-Za-z0-9._/-] and "." or
// ".." segments. Empty segments are allowed (they are dropped).
func checkSegments(what, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fmt.Errorf("%w: transport %s %q: character %q is outside [A-Za-z0-9._/-]", slipstream.ErrInvalidKey, what, s, c)
		}
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: transport %s %q has a %q segment", slipstream.ErrInvalidKey, what, s, seg)
		}
	}
	return nil
}

// names returns the pointer's name and the payload directory's name (no
// trailing '/') of key under prefix.
func names(prefix, key string) (pointer, payloads string, err error) {
	if err := checkSegments("prefix", prefix); err != nil {
		return "", "", err
	}
	if err := checkSegments("key", key); err != nil {
		return "", "", err
	}
	k := joinName(key)
	if k == "" {
		return "", "", fmt.Errorf("%w: empty transport key %q", slipstream.ErrInvalidKey, key)
	}
	base := joinName(prefix, k)
	return base + PointerSuffix, base + PayloadsSuffix, nil
}

// payloadName returns the content address of the payload whose pointer is
// pointer, with cursor rank rank: <payloads>/<rank:16 hex>-<BLAKE3(pointer)[:8]:16 hex>.tar.
func payloadName(payloads string, rank uint64, pointer []byte) string {
	sum := blake3.Sum256(pointer)
	return fmt.Sprintf("%s/%016x-%s.tar", payloads, rank, hex.EncodeToString(sum[:8]))
}
