// Package storetest implements the conformance suite and the benchmark
// workload that every [slipstream.Store] backend runs with one call.
//
// A backend's test file calls [Run] with a factory that opens (or reopens)
// the fold at a directory, [RunLocking] with an error-returning opener, and
// [Bench] from a benchmark:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, dir string) slipstream.Store {
//			s, err := applog.Open(dir, nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The checks: a conformance stream folded and reopened, point and prefix
// reads, byte-wise key order, the cursor across reopen, the fold as a pure
// function of the log, purges, empty batches and empty values, version
// tokens of every length, a long random history closed and reopened,
// exports (round trip, into an empty directory, refused into a non-empty
// one, of an empty store), use after Close, values handed out that are not
// the fold's memory, and reads concurrent with Apply; [RunLocking] checks
// the single-writer lock and [RunArtifact] the artifact layer. The
// suite closes every store it opens before opening the same directory
// again, because backends hold single-writer locks.
//
// [Bench], [BenchApply] and [BenchRead] run one workload on every backend
// ([Workload]'s keys, 256-byte values): Apply
// throughput at batches of 100 and 1,000, point reads of present and absent
// keys, and 1,000-entry prefix scans. The key space defaults to
// [DefaultBenchKeys]; set SLIPSTREAM_BENCH_KEYS (e.g. 1000000) for larger
// runs. Throughput is reported per wall-clock second and per CPU second.
package storetest
