// Package pebblestore implements [slipstream.Store] on a pebble LSM database
// (github.com/cockroachdb/pebble/v2): a fold that lives on disk rather than in
// RAM, for buckets too large for the append-log default.
//
// # Layout
//
// One database per fold directory. Keys carry a one-byte namespace:
//
//	0x00 ‖ "cursor"  → raw cursor bytes (0..10, no length prefix)
//	0x01 ‖ key       → ver_len:u8 ‖ version ‖ value   (value runs to the end)
//
// Every Apply writes its puts, deletes (purges are deletes) and the cursor in
// one atomic pebble batch, so the database can never hold a cursor ahead of
// its data. A stored cursor longer than 10 bytes, a value record that does not
// decode and a key that is not UTF-8 are errors wrapping
// [slipstream.ErrInvalidFormat]. Pebble's own errors keep their chain.
//
// # Durability
//
// Options.Sync fsyncs the write-ahead log on every commit. Without it (the
// default) commits use pebble.NoSync, which is weaker than an append-log
// write(2): pebble buffers WAL records inside the process and writes them out
// asynchronously, so a process crash, not only a power loss, can lose the
// last applies. The loss is always a tail of whole batches: the fold reopens
// at an older cursor that matches its data, and the watch resumes from it. A
// clean Close writes the buffer out. ExportTo flushes the WAL before its
// checkpoint, so an export always holds every applied batch.
//
// # Tuning
//
// Zero Options size pebble from the machine: the block cache is an eighth of
// the memory the process may use (GOMEMLIMIT, the cgroup's limit, the
// physical memory), within 64 MiB and 1 GiB; memtables are a quarter of it
// (4 to 64 MiB; Options.MemTableSize overrides); pebble may run up to
// GOMAXPROCS compactions at once when level 0 or the compaction debt grows
// (pebble's default is one). BenchmarkApplyOptions compares these with the
// former fixed settings; BenchmarkHydrate and BenchmarkLiveApply show where
// an Apply's time goes (the applying thread's CPU time and page faults,
// pebble's flushes, compactions and write stalls). On machines where page
// faults are expensive, they bound a fresh hydration: see
// docs/OPERATIONS.md ("What bounds the Pebble fold").
//
// # Concurrency
//
// Apply, ExportTo, Settle and Close are serialised. Get, ForEachInRange,
// Cursor and Len may run concurrently with them; each read sees a consistent
// snapshot. Close waits for reads in progress.
//
// # Caveats
//
//   - Full scans churn the cache: pebble v2 has no per-iterator switch to
//     bypass the block cache, so ForEachInRange("") (the resync diff, an
//     offline dump) evicts the working set of point reads; bounded prefix
//     scans define the working set and are cheap.
//   - A long ForEachInRange pins the memtables and sstables of its snapshot
//     until it returns, holding back the reclamation of compacted files.
//   - ForEachInRange values are copies into a buffer reused from entry to
//     entry: valid only during the callback, and never the iterator's
//     memory (writing into them cannot change the fold).
//   - Exports hard-link sstables: delete an export once shipped, or it pins
//     disk space the live fold has compacted away.
//   - Settle rewrites the whole key space (transiently up to twice the disk);
//     run it after a bulk hydration, before serving reads.
//   - The default block cache is 64 MiB; a fold whose hot set is larger
//     wants Options.CacheSize raised.
package pebblestore
