// Package objstoretest implements the conformance suite every objstore.Store
// runs, the transport suite (docs/TRANSPORT.md) run on every
// store, and helpers that build and check small append-log artifacts.
//
// A store's test file calls both suites with a factory that returns a fresh,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		objstoretest.Run(t, func(t *testing.T) objstore.Store { return mem.New() }, objstoretest.Options{})
//	}
//
//	func TestTransport(t *testing.T) {
//		objstoretest.RunTransport(t, func(t *testing.T) objstore.Store { return mem.New() }, objstoretest.Options{})
//	}
package objstoretest
