// Package journaltest holds the library-level crash test of the invariant:
// a consumer whose Apply journals every revision it applied is killed with
// SIGKILL at random moments and restarted; after every restart, every
// in-scope revision at or below the fold's persisted cursor must be in the
// journal. It has no non-test code.
package journaltest
