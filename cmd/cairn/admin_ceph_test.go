//go:build ceph

package main

import (
	"context"
	"path/filepath"
	"testing"
)

// A --ceph-conf given that cannot be read is an error, not a skip: the
// operator asked for the RBD groups.
func TestAdminLeaksCephConfGiven(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	o := leaksOptions{pools: []string{defaultLeakPool}, confGiven: true}
	o.ceph.conf = filepath.Join(t.TempDir(), "ceph.conf")
	if _, skipped, err := a.rbdGroups(context.Background(), o); err == nil {
		t.Fatalf("rbdGroups with a missing --ceph-conf: no error (skipped %q)", skipped)
	}
}
