//go:build ceph

package e2e

// buildTags are the tags TestMain builds the binary with: the tests get
// what the binary has (here: Ceph support, go-ceph for Ceph 16), and the
// test hooks the shipped binary lacks (backup/testhooks_on.go).
const buildTags = "ceph pacific cairn_testhooks"
