//go:build ceph

package appliance

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cairn/internal/cephtest"
	"cairn/internal/openstack/ostest"
	"cairn/plugins/cinder"
	"cairn/plugins/nova"
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

// TestOpenCinder: a cloud section registers the Cinder and Nova plugins;
// the Cinder plugin lists the project's volumes through the test cloud.
func TestOpenCinder(t *testing.T) {
	env := ostest.Env(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(env["OS_PASSWORD"]), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Open(context.Background(), Config{DataDir: t.TempDir(), CephConf: env["CEPH_CONF"], Cloud: &CloudConfig{
		AuthURL: env["OS_AUTH_URL"], Username: env["OS_USERNAME"], PasswordFile: pw}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if types := a.ProtectableTypes(); !slices.Contains(types, cinder.Type) || !slices.Contains(types, nova.Type) {
		t.Fatalf("protectable types %v lack %s or %s", types, cinder.Type, nova.Type)
	}
	// A project the user has no role in is refused by Keystone: cairn
	// never sees its volumes.
	if _, err := a.Instances(context.Background(), "0123456789abcdef0123456789abcdef", cinder.Type); err == nil ||
		!strings.Contains(err.Error(), "needs a role") {
		t.Fatalf("instances of a project the cloud user has no role in: %v, want a refusal saying the user needs a role", err)
	}
}
