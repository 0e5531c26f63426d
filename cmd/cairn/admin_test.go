package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Without a Ceph configuration at the default place (or without Ceph
// support), admin leaks skips the RBD groups and says so, instead of
// failing: an operator's machine may reach OpenStack only.
func TestAdminLeaksSkipsRBDGroups(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ceph.conf")
	a := &app{getenv: func(k string) string {
		if k == "CEPH_CONF" {
			return missing
		}
		return ""
	}}
	groups, skipped, err := a.rbdGroups(context.Background(), leaksOptions{pools: []string{defaultLeakPool}})
	if err != nil || len(groups) != 0 || len(skipped) != 1 || !strings.HasPrefix(skipped[0], "RBD groups: ") {
		t.Fatalf("rbdGroups: %v, skipped %q, %v; want nothing, one note on RBD groups, no error", groups, skipped, err)
	}
}
