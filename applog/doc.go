// Package applog implements the append-log fold, the default
// [slipstream.Store]: an append-only log of CRC-checked records, replayed at
// open into an in-RAM keydir (every live key, its version and where its
// value is in the log) and periodically rewritten compactly; values are
// read back from the log. The file format (version 2) is specified in
// docs/FORMAT.md, with golden files in testdata.
//
// # Format
//
// A log is a 6-byte header followed by records. Integers are little-endian.
//
//	header: "PGSS" ‖ version:u16 (= 2)
//
//	+----------+---------+-------------------------------------------------+
//	| crc: u32 | type: u8| payload                                         |
//	+----------+---------+-------------------------------------------------+
//	             \________________ covered by crc ________________________/
//
//	PUT    0x01  key_len:u16 ‖ key ‖ value_len:u32 ‖ value ‖ ver_len:u8 ‖ ver
//	DELETE 0x02  key_len:u16 ‖ key ‖ ver_len:u8 ‖ ver
//	CURSOR 0x03  cur_len:u8 ‖ cursor
//
// The CRC is CRC-32/IEEE (hash/crc32.ChecksumIEEE) over the type byte through
// the record's last byte. Versions and cursors are raw tokens of 0 to 10
// bytes; a none cursor is a 0-length CURSOR record. Purges are written as
// DELETEs, and a DELETE's version is ignored on replay. Keys are UTF-8 and
// sort byte-wise.
//
// Apply appends the batch's PUT and DELETE records, then one CURSOR record,
// in one write. Compaction writes the header, one PUT per live key in
// ascending key order, then the CURSOR record (omitted when the cursor is
// none): the same logical state always yields the same bytes.
//
// # Replay
//
// Loading tells a torn tail from corruption. A record whose lengths run past
// the end of the file, a checksum mismatch within the last bytes of the file
// (fewer than 6 bytes after the record), or trailing zero bytes from
// preallocation are a torn tail: it is dropped, and the file is rewritten
// without it. A checksum mismatch with more records after it is corruption
// ([slipstream.ErrCorrupt]). A value length over 16 MiB is read as a
// checksum mismatch rather than a record running past the end, so a
// bit-flipped length cannot silently drop the rest of the file. A bad
// header, an unknown record type, a version length over 10, a non-UTF-8 key,
// and a run of zero bytes followed by non-zero data are
// [slipstream.ErrInvalidFormat]. A failed load never writes: the file stays
// byte-for-byte as it was, so no CRC-valid suffix is ever burned. Errors are
// *[FormatError] values naming the file and the offset. A corruption that
// inflates a length field so the record seems to run past the end is
// indistinguishable from a torn write; the format cannot detect it.
//
// A successful [Load] rewrites the file when it has a torn tail or
// redundant records (overwrites, deletes, repeated cursors), and when it
// holds no entry and no cursor but has bytes past the header; a compact
// file is left unchanged. [Open] writes less: it cuts a torn tail off in
// place (truncate, fsync) and rewrites the log only under the compaction
// policy below, so the cursor record of every past Apply does not turn each
// restart into a rewrite of the whole fold.
//
// # Durability
//
// By default Apply hands its records to the operating system with one
// write(2) and no fsync: an Apply survives a process crash but a power loss
// may drop a tail of applies. Data records precede their CURSOR record, so
// what survives always carries a cursor no later than its data, and the
// watch resumes from it. Options.Sync adds an fsync after every Apply.
// Compaction is durable on its own: temp file in the fold directory, fsync,
// rename over the log, fsync of the directory.
//
// # Compaction
//
// Apply compacts from memory once the log's garbage — records of overwritten
// and deleted keys, superseded cursors — exceeds Options.CompactThreshold
// (default 10 MiB) and also the size of the live records. The second
// condition keeps a large fold from being rewritten every 10 MiB (each
// rewrite writes at most one byte per garbage byte appended since the last,
// and the log stays under about twice the live records plus the threshold),
// and a hydration, which appends no garbage, never compacts. Once the rename has
// happened the writer always moves to the new file; if it cannot reopen it,
// the writer is poisoned ([ErrPoisoned]) rather than appending into the
// renamed-away inode. A write or fsync failure also poisons it, after
// truncating any partial record. Close and reopen the store to recover.
//
// # Memory
//
// The fold keeps its keys in RAM and its values on disk, as Bitcask does:
// an open-addressing hash index over an entry slice maps each live key to
// its version and its value's offset and length in the log, and a sorted
// key index serves scans. Get and ForEachInRange read values back from the
// log, where the platform allows through a read-only shared mapping of the
// file (a copy out of the page cache, no system call), else with pread;
// each record read is checked against its CRC, so a log corrupted after the
// load yields [slipstream.ErrCorrupt], never wrong bytes. Apply copies no
// value into memory: it writes the records and records where they went.
// The values' memory is the kernel's page cache: it is shared, reclaimable,
// and outside the Go heap. Measured with BenchmarkMemory on a fold of
// 25-byte keys and 256-byte values, loaded from disk, the heap holds about
// 82 bytes per entry at 1,000,000 entries, 0.29× the raw key and value
// bytes (16 more per entry once a scan has built the ordered index),
// against 1.35-1.39× when the values were held in RAM. The cost
// is in reads: a Get copies its record out of the mapping and checks it
// (on a 2-CPU VM, about 2.2 µs of CPU per Get against 1.5 µs from RAM), and
// a value not in the page cache is read from disk.
//
// Loading streams the log through a 1 MiB window, parsing each chunk right
// after reading it, so the file is never held whole; verifying an export
// and [Writer.Compact] read it whole. A record may straddle the window's
// end at any byte. The load makes no estimate of the key count: while PUTs
// come in strictly ascending key order (a compacted log), they cannot
// overwrite each other and are appended without lookups, the hash index
// is then sized once for their exact number, and their ordered index (for
// range scans) is built from them, exactly sized, at the first scan,
// delete or compaction (or once the keys inserted since outnumber half of
// them). Nothing the load of a compacted log builds grows by doubling: on
// VMs where a fresh page costs microseconds, a doubling's copies into
// fresh pages were a third of a restart.
//
// # Concurrency
//
// A [Store] has one writer (Apply, ExportTo, Close, serialised by a lock)
// and any number of concurrent readers (Get, ForEachInRange, Cursor, Len,
// Size) guarded by a read-write lock. Range scans read an ordered key index
// kept beside the hash index, so they never sort the fold. A scan holds the
// read lock only while resolving a chunk of keys: an Apply may land between
// chunks, and the scan is not a point-in-time snapshot (see [Store]).
// The log is append-only, and a compaction moves every entry to the new
// file at once (under the write lock) while readers that already located
// their values keep reading the old file through their own reference to
// it; so values are read outside the lock, into memory of the reader's own:
// fn never holds the fold's memory.
//
// The directory holds the log [FileName] and the lock file [LockName], on
// which Open takes an exclusive flock: a second Open, in any process, fails
// with [slipstream.ErrLocked]. [OpenReadOnly] takes no lock and never writes,
// for offline queries on a fold a running process holds.
//
// # Decisions on the format's edge cases
//
//   - Values larger than 16 MiB ([MaxValueLen]), keys longer than 65535
//     bytes or not UTF-8 are refused at write time with
//     [slipstream.ErrInvalidFormat]; Apply refuses the whole batch before
//     writing anything: the format's length field would take up to 4 GiB,
//     but readers take a value length over 16 MiB for corruption.
//   - A file shorter than the header that is a prefix of it (including an
//     empty file) was torn at creation: it counts as an empty log and is
//     given its full header. Any other file shorter than the header is
//     refused with [slipstream.ErrInvalidFormat] and left alone.
//   - A failure after the compaction's rename (the directory fsync) still
//     moves the writer to the new file, then returns the error; a failed
//     reopen poisons the writer.
//
// # Raw API
//
// [Writer] ([OpenWriter], WriteUpdate, Checkpoint, Flush, Sync, Compact,
// Close) and [Load] expose the log to callers that keep their own state;
// [Snapshot.StaleKeys] diffs a loaded snapshot against a live key listing
// after a cursor-expired fallback.
package applog
