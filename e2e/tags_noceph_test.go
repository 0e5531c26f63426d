//go:build !ceph

package e2e

// buildTags are the tags TestMain builds the binary with (none: no Ceph).
const buildTags = ""
