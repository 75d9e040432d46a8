package applog

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestChecksumIsCRC32IEEE pins checksum to the standard library's CRC-32/IEEE
// for every length up to a few blocks past the carry-less threshold.
func TestChecksumIsCRC32IEEE(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 700)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for n := range len(buf) + 1 {
		for _, off := range []int{0, 1, 7} {
			if off+n > len(buf) {
				continue
			}
			p := buf[off : off+n]
			if got, want := checksum(p), crc32.ChecksumIEEE(p); got != want {
				t.Fatalf("len %d offset %d: checksum %08x, crc32 %08x", n, off, got, want)
			}
		}
	}
}
