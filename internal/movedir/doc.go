// Package movedir renames a directory onto a destination that does not
// exist or is an empty directory, atomically where the platform allows.
//
// os.Rename refuses an existing directory as its target on every platform
// (it mimics Windows), but POSIX rename(2) replaces an empty directory and
// fails on a non-empty one in one atomic step: exactly what placing an
// export or an import beside a destination that may be an empty directory
// needs, with no window in which the destination is missing or could be
// overwritten.
package movedir
