package applog

import (
	"encoding/binary"
	"hash/crc32"
)

// checksum returns crc32.ChecksumIEEE(p). The standard library hashes the
// 16-byte blocks of an input of 64 bytes or more with carry-less
// multiplication, then its last len(p)%16 bytes one table lookup at a time,
// each lookup waiting for the one before; when a burst of value copies has
// pushed the table out of cache (Apply and compaction copy a record's worth
// of value for every record they seal), that chain of misses costs as much
// as the rest of the record. checksum leaves the blocks to the standard
// library and hashes the tail eight bytes per step with slicing-by-8, whose
// eight lookups per step are independent.
func checksum(p []byte) uint32 {
	if len(p) < 64 {
		return crc32.ChecksumIEEE(p)
	}
	blocks := len(p) &^ 15
	return crcTail(crc32.Update(0, crc32.IEEETable, p[:blocks]), p[blocks:])
}

// crcSlicing8 holds the slicing-by-8 tables of the IEEE polynomial.
var crcSlicing8 = func() *[8][256]uint32 {
	t := new([8][256]uint32)
	for i := range 256 {
		c := uint32(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ crc32.IEEE
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range 256 {
		c := t[0][i]
		for j := 1; j < 8; j++ {
			c = t[0][c&0xFF] ^ c>>8
			t[j][i] = c
		}
	}
	return t
}()

// crcTail continues the IEEE checksum crc over p.
func crcTail(crc uint32, p []byte) uint32 {
	t := crcSlicing8
	crc = ^crc
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint32(p)
		crc = t[0][p[7]] ^ t[1][p[6]] ^ t[2][p[5]] ^ t[3][p[4]] ^
			t[4][crc>>24] ^ t[5][crc>>16&0xFF] ^ t[6][crc>>8&0xFF] ^ t[7][crc&0xFF]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return ^crc
}
