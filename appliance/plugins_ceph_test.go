//go:build ceph

package appliance

import (
	"context"
	"slices"
	"testing"

	"cairn/internal/cephtest"
	rbdplugin "cairn/plugins/rbd"
)

// TestOpenRBD: rbd_pools registers the RBD plugin beside the file plugin,
// and its start-up recovery runs against the cluster.
func TestOpenRBD(t *testing.T) {
	c := cephtest.Connect(t)
	a, err := Open(context.Background(), Config{DataDir: t.TempDir(), RBDPools: []string{cephtest.Pool()}, CephConf: c.Conf}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if types := a.ProtectableTypes(); !slices.Contains(types, rbdplugin.Type) {
		t.Fatalf("protectable types %v lack %s", types, rbdplugin.Type)
	}
	if _, err := a.Instances(context.Background(), "proj", rbdplugin.Type); err != nil {
		t.Fatalf("RBD instances: %v", err)
	}
}
