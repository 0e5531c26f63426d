//go:build !linux

package bigbuf

// alignHuge returns the first n bytes of b: without THP advice there is
// nothing to align for.
func alignHuge(b []byte, n int) []byte { return b[:n:n] }
