//go:build !linux

package dedup

func adviseHuge([]byte) {}
