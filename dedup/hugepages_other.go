//go:build !linux

package dedup

// primeHugePages is Linux's (hugepages_linux.go).
func primeHugePages(int) {}
