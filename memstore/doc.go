// Package memstore implements [slipstream.Store] in memory: the fold for
// tests, examples and synctest bubbles, as package memkv is the bucket. It
// passes the same conformance suite as the real backends (storetest.Run).
//
// A Store from [New] lives only in memory. A Store from [Open] also keeps
// its fold in one JSON file in its directory, written when it is closed
// (never in between: a process that dies loses everything since the last
// Close, and the file on disk stays self-consistent), and loaded by the next
// Open. [Store.ExportTo] writes the same file, so Open reads an export.
//
// # Concurrency
//
// Every method may be called concurrently with every other; Apply is
// atomic for readers (a reader sees a batch and its cursor together or not
// at all).
package memstore
