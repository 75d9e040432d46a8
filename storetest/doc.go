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
// The checks follow storage.md §10.1 (those that do not need the artifact
// layer) plus crash-and-reopen, locking and concurrent-read checks.
// [RunArtifact] adds the artifact checks (export, verify, import, and every
// refusal of a doctored artifact) given the backend's artifact.Backend. The
// suite closes every store it opens before opening the same directory
// again, because backends hold single-writer locks.
//
// [Bench], [BenchApply] and [BenchRead] run one workload on every backend
// (storage.md §11.2's key and value generator, 256-byte values): Apply
// throughput at batches of 100 and 1,000, point reads of present and absent
// keys, and 1,000-entry prefix scans. The key space defaults to
// [DefaultBenchKeys]; set SLIPSTREAM_BENCH_KEYS (e.g. 1000000) for larger
// runs. Throughput is reported per wall-clock second and per CPU second.
package storetest
