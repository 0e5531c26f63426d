//go:build !linux

package bigbuf

// primeHeap does nothing: there is no transparent huge page advice to give.
func primeHeap(int) {}
