// Package protocol holds the pure guard functions that production code and
// the model checks share, so a change to a guard is re-verified by the
// models.
package protocol
