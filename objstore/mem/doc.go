// Package mem implements an in-memory objstore.Store with real conditional
// writes (a fresh ETag per write) and a settable clock for LastModified, for
// tests and examples.
package mem
