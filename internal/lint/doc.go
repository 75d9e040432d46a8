// Package lint holds tests that make the project's style rules executable:
// which packages may import which dependencies, fmt.Errorf wrapping with %w,
// and typed atomics. It has no non-test code.
package lint
