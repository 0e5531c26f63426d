//go:build ceph

package appliance

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"cairn/internal/openstack/ostest"
	"cairn/plugins/glance"
	"cairn/plugins/neutron"
)

// TestOpenGlanceNeutron: a cloud section registers the Glance and Neutron
// plugins, which list the project's images and networks through the test
// cloud, and the images of interrupted restores are deleted at start.
func TestOpenGlanceNeutron(t *testing.T) {
	env := ostest.Env(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(env["OS_PASSWORD"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: t.TempDir(), CephConf: env["CEPH_CONF"], Cloud: &CloudConfig{
		AuthURL: env["OS_AUTH_URL"], Username: env["OS_USERNAME"], PasswordFile: pw, ImageSpoolDir: t.TempDir()}}
	a, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	types := a.ProtectableTypes()
	for _, want := range []string{glance.Type, neutron.Type} {
		if !slices.Contains(types, want) {
			t.Fatalf("protectable types %v lack %s", types, want)
		}
	}
	// A project the cloud user holds a role in: its (empty) lists.
	other := ostest.OtherProject(t)
	for _, typ := range []string{glance.Type, neutron.Type} {
		if rs, err := a.Instances(context.Background(), other.ID, typ); err != nil || len(rs) != 0 {
			t.Fatalf("%s instances of a new project: %v, %v", typ, rs, err)
		}
	}
	for _, typ := range []string{glance.Type, neutron.Type} {
		if _, err := a.Instances(context.Background(), "0123456789abcdef0123456789abcdef", typ); err == nil {
			t.Fatalf("%s instances of a project the cloud user has no role in: no error", typ)
		}
	}
	// The journal is durable state: an entry recorded survives a reopen.
	j := &glanceJournal{a: a}
	if err := j.Record(context.Background(), glance.Entry{ID: "e1", Project: "p1", Name: "half"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	es, err := (&glanceJournal{a: a2}).Entries(context.Background(), "p1")
	if err != nil || len(es) != 1 || es[0].Name != "half" {
		t.Fatalf("glance journal after a reopen: %+v, %v", es, err)
	}
}
