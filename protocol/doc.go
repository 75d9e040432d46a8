// Package protocol holds the pure guard functions that production code and
// the model checks share, so a change to a guard is re-verified by the
// models: the resume guards used by every watch backend, and the publish and
// prune guards of the artifact transport (docs/TRANSPORT.md).
//
// The exhaustive model of fleet publishing in this package's tests calls
// these same functions from its transition function (docs/MODEL.md), so a
// change to a guard is re-verified by `go test ./protocol`.
//
// Ranks are plain uint64 values: a cursor's NATS revision (callers rank a
// cursor without a revision as 0).
package protocol
