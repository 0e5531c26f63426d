//go:build ceph

package nova

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	gorbd "github.com/ceph/go-ceph/rbd"

	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/internal/openstack/ostest"
	"cairn/plugins"
	"cairn/plugins/cinder"
)

const mib = 1 << 20

type memJournal struct {
	mu sync.Mutex
	m  map[string]cinder.Entry
}

func (j *memJournal) Record(_ context.Context, e cinder.Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[e.ID] = e
	return nil
}

func (j *memJournal) Forget(_ context.Context, id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.m, id)
	return nil
}

func (j *memJournal) Entries(_ context.Context, project string) ([]cinder.Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []cinder.Entry
	for _, e := range j.m {
		if e.Project == project {
			out = append(out, e)
		}
	}
	return out, nil
}

func (j *memJournal) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.m)
}

// fixture is the plugin over the test cloud, a fresh repository, a
// flavor and a server booted from a 1 GiB volume with a second 1 GiB
// data volume attached.
type fixture struct {
	p       *Plugin
	vols    *cinder.Plugin
	j       *memJournal
	repo    *dedup.Repository
	cloud   *openstack.Cloud
	cin     *openstack.Cinder
	nova    *openstack.Nova
	io      *rados.IOContext
	project string
	flavor  string
	root    *openstack.Volume
	data    *openstack.Volume
	server  *openstack.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := ostest.Env(t)
	ctx := context.Background()
	var err error
	f := &fixture{j: &memJournal{m: map[string]cinder.Entry{}}}
	f.cloud, err = openstack.New(openstack.Config{FromEnv: true, WaitTimeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.vols, err = cinder.New(cinder.Config{Cloud: f.cloud, Journal: f.j, Ceph: cephrbd.ConnOptions{Conf: env["CEPH_CONF"]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.vols.Close() })
	if f.p, err = New(Config{Cloud: f.cloud, Volumes: f.vols, Journal: f.j, EphemeralPool: "volumes"}); err != nil {
		t.Fatal(err)
	}
	f.repo, err = dedup.Init(ctx, filepath.Join(t.TempDir(), "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.repo.Close() })
	if f.cin, err = f.cloud.Cinder(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if f.nova, err = f.cloud.Nova(ctx, ""); err != nil {
		t.Fatal(err)
	}
	f.flavor = testFlavor(t)
	f.root = f.volume(t, "cairn-root-"+t.Name())
	f.data = f.volume(t, "cairn-data-"+t.Name())
	f.project = f.root.TenantID
	if err := f.cin.SetBootable(ctx, f.root.ID); err != nil {
		t.Fatal(err)
	}
	f.server = f.boot(t, f.nova, "cairn-server-"+t.Name(), f.root.ID, f.data.ID)
	conn, err := rados.NewConn()
	if err == nil {
		err = conn.ReadConfigFile(env["CEPH_CONF"])
	}
	if err == nil {
		err = conn.Connect()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Shutdown)
	if f.io, err = conn.OpenIOContext("volumes"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.io.Destroy)
	return f
}

// testFlavor creates a public flavor (the test cloud has none), deleted
// when the test ends, and returns its name.
func testFlavor(t *testing.T) string {
	name := "cairn-" + strings.ReplaceAll(t.Name(), "/", "-")
	ostest.Flavor(t, name)
	return name
}

func (f *fixture) volume(t *testing.T, name string) *openstack.Volume {
	t.Helper()
	v, err := f.cin.CreateVolume(context.Background(), openstack.VolumeSpec{Name: name, SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deleteVolume(t, f.cin, v.ID) })
	return v
}

func (f *fixture) deleteVolume(t *testing.T, c *openstack.Cinder, id string) {
	ctx := context.Background()
	ss, _ := c.Snapshots(ctx, id)
	for _, s := range ss {
		_ = c.DeleteSnapshot(ctx, s.ID)
	}
	if err := c.DeleteVolume(ctx, id); err != nil {
		t.Errorf("clean up volume %s: %v", id, err)
	}
}

// boot boots a server from root with data attached, deleted when the
// test ends (before its volumes: cleanups run last-in first-out).
func (f *fixture) boot(t *testing.T, n *openstack.Nova, name, root, data string) *openstack.Server {
	t.Helper()
	ctx := context.Background()
	fl, err := n.FlavorByName(ctx, f.flavor)
	if err != nil {
		t.Fatal(err)
	}
	s, err := n.CreateServer(ctx, openstack.ServerSpec{Name: name, FlavorID: fl.ID, RootVolume: root,
		Metadata: map[string]string{"role": "test"}})
	if s != nil {
		t.Cleanup(func() {
			if err := n.DeleteServer(context.Background(), s.ID); err != nil {
				t.Errorf("clean up server %s: %v", s.ID, err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.AttachVolume(ctx, s.ID, data, ""); err != nil {
		t.Fatal(err)
	}
	c, err := f.cloud.Cinder(ctx, s.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitVolume(ctx, data, "in-use"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) image(t *testing.T, name string) *gorbd.Image {
	t.Helper()
	img, err := gorbd.OpenImage(f.io, name, gorbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (f *fixture) write(t *testing.T, id string, off int64, data []byte) {
	t.Helper()
	img := f.image(t, "volume-"+id)
	defer img.Close()
	if _, err := img.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) read(t *testing.T, id string) []byte {
	t.Helper()
	img := f.image(t, "volume-"+id)
	defer img.Close()
	size, err := img.GetSize()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := img.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) protect(t *testing.T, previous string, options map[string]any) (*plugins.Backup, *Manifest) {
	t.Helper()
	ctx := context.Background()
	res, err := f.p.Instance(ctx, f.project, f.server.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: f.project, Resource: res, Options: options,
		Tags: map[string]string{"test": "1"}, Previous: previous})
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadManifest(ctx, f.repo, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	return b, m
}

// cairnSnapshots counts the cairn snapshots Cinder shows on volume id.
func (f *fixture) cairnSnapshots(t *testing.T, id string) int {
	t.Helper()
	ss, err := f.cin.Snapshots(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range ss {
		if s.Metadata[cinder.MetaManaged] == "true" {
			n++
		}
	}
	return n
}

func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 3))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func readBytes(t *testing.T, repo *dedup.Repository, id string) int64 {
	t.Helper()
	cp, _, err := repo.LoadCheckpoint(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Stats.ReadBytes
}

// TestServerProtectRestore: a boot-from-volume server with a data
// volume is protected twice (the second reads about the change), then
// restored to a new ACTIVE server with the restored volumes attached in
// the original order; deleting the checkpoints leaves no cairn snapshot,
// temporary volume or attachment.
func TestServerProtectRestore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, f.root.ID, 0, random(1, 8*mib))
	f.write(t, f.data.ID, 0, random(2, 8*mib))

	first, m := f.protect(t, "", nil)
	if len(m.Volumes) != 2 || m.Volumes[0].VolumeID != f.root.ID || m.Volumes[0].BootIndex != 0 ||
		m.Volumes[1].VolumeID != f.data.ID || m.Volumes[1].BootIndex != -1 || m.Volumes[1].Device == "" {
		t.Fatalf("manifest volumes %+v: want root %s (boot index 0) then data %s", m.Volumes, f.root.ID, f.data.ID)
	}
	if m.Server.Flavor.Name != f.flavor || m.Server.Flavor.RAM != 64 || m.Server.Metadata["role"] != "test" || m.Server.ImageID != "" {
		t.Errorf("manifest definition %+v: want flavor %s (64 MiB), metadata role=test, no image", m.Server, f.flavor)
	}
	if m.Consistency.Level == "" || m.Consistency.Reason == "" {
		t.Errorf("manifest consistency %+v: want a level and its reason", m.Consistency)
	}
	cp, _, err := f.repo.LoadCheckpoint(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Tags[TagConsistency] != m.Consistency.Level || cp.Tags[TagServer] != f.server.ID || cp.Tags["test"] != "1" {
		t.Errorf("server checkpoint tags %v", cp.Tags)
	}

	f.write(t, f.root.ID, 512*mib, random(3, mib))
	f.write(t, f.data.ID, 256*mib, random(4, mib))
	second, m2 := f.protect(t, first.ID, nil)
	for i, v := range m2.Volumes {
		// About the 1 MiB changed: the diff is by 4 MiB RBD object,
		// plus the verification sample; not the 8 MiB written first.
		if r := readBytes(t, f.repo, v.BackupID); r < mib || r > 6*mib {
			t.Errorf("second protection read %d bytes of volume %d (%s), want about the 1 MiB changed", r, i, v.VolumeID)
		}
	}
	for _, id := range []string{f.root.ID, f.data.ID} {
		if n := f.cairnSnapshots(t, id); n != 1 {
			t.Errorf("volume %s has %d cairn snapshots after two protections, want the one rotation snapshot", id, n)
		}
	}

	sid, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: f.project, BackupID: second.ID})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := f.nova.Server(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	as, err := f.nova.VolumeAttachments(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.nova.DeleteServer(context.Background(), sid); err != nil {
			t.Errorf("clean up restored server: %v", err)
		}
		for _, a := range as {
			f.deleteVolume(t, f.cin, a.VolumeID)
		}
	})
	if ns.Status != "ACTIVE" || ns.Flavor.Name != f.flavor || ns.Metadata["role"] != "test" || ns.Metadata[MetaJournal] != "" {
		t.Errorf("restored server %+v: want ACTIVE, flavor %s, metadata role=test and no journal key", ns, f.flavor)
	}
	if len(as) != 2 || as[0].VolumeID == f.root.ID || as[1].VolumeID == f.data.ID || as[1].Device != m2.Volumes[1].Device {
		t.Fatalf("restored attachments %+v: want two new volumes, the data one at %s", as, m2.Volumes[1].Device)
	}
	for i, orig := range []string{f.root.ID, f.data.ID} {
		if !bytes.Equal(f.read(t, as[i].VolumeID), f.read(t, orig)) {
			t.Errorf("restored volume %d (%s) differs from %s", i, as[i].VolumeID, orig)
		}
	}
	if err := f.p.Verify(ctx, f.repo, second.ID); err != nil {
		t.Errorf("verify: %v", err)
	}

	for _, id := range []string{first.ID, second.ID, second.ID} {
		if err := f.p.Delete(ctx, f.repo, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	cps, err := f.repo.Checkpoints(ctx)
	if err != nil || len(cps) != 0 {
		t.Errorf("checkpoints left after deleting both: %d, %v", len(cps), err)
	}
	for _, id := range []string{f.root.ID, f.data.ID} {
		if n := f.cairnSnapshots(t, id); n != 0 {
			t.Errorf("volume %s keeps %d cairn snapshots after its checkpoints were deleted", id, n)
		}
		atts, err := f.cin.Attachments(ctx, id)
		if err != nil || len(atts) != 1 || atts[0].Instance != f.server.ID {
			t.Errorf("volume %s attachments %+v (%v): want only the server's", id, atts, err)
		}
	}
	if n := f.j.len(); n != 0 {
		t.Errorf("journal entries left: %+v", f.j.m)
	}
}

func TestInstancesAndErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	all, err := f.p.Instances(ctx, f.project)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range all {
		found = found || r.ID == f.server.ID && r.Type == Type
	}
	if !found {
		t.Errorf("Instances %+v lack server %s", all, f.server.ID)
	}
	deps, err := f.p.DependentResources(ctx, f.project, plugins.Resource{ID: f.server.ID, Type: Type})
	if err != nil {
		t.Fatal(err)
	}
	// The server protects its volumes itself: they are no dependency to
	// protect again beside it (the fixture's server has no image).
	for _, d := range deps {
		if d.Type == cinder.Type || d.Type != NetworkType {
			t.Errorf("DependentResources %+v: want only the networks of its ports, not %s", deps, plugins.Key(d))
		}
	}
	if _, err := f.p.Instance(ctx, f.project, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Errorf("missing server: %v, want ErrInstanceNotFound", err)
	}
	if _, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: f.project, BackupID: "x", Target: "/tmp/x"}); !errors.Is(err, plugins.ErrInvalidParameter) {
		t.Errorf("restore to a path: %v, want ErrInvalidParameter", err)
	}
}

// TestProjectIsolation: a server of another project, in which the cloud
// user holds the admin role, is neither listed, found nor protected
// through the first project (Nova shows an admin any server by ID).
func TestProjectIsolation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other := otherProject(t)
	oc, err := f.cloud.Cinder(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	on, err := f.cloud.Nova(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	root, err := oc.CreateVolume(ctx, openstack.VolumeSpec{Name: "cairn-other-root", SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deleteVolume(t, oc, root.ID) })
	data, err := oc.CreateVolume(ctx, openstack.VolumeSpec{Name: "cairn-other-data", SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deleteVolume(t, oc, data.ID) })
	if err := oc.SetBootable(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	srv := f.boot(t, on, "cairn-other-server", root.ID, data.ID)
	if srv.TenantID != other {
		t.Fatalf("server %s is in project %s, want %s", srv.ID, srv.TenantID, other)
	}
	// The admin's token scoped to the first project does show it by ID:
	// the plugin must not.
	if _, err := f.nova.Server(ctx, srv.ID); err != nil {
		t.Logf("Nova did not show the other project's server to the admin by ID (%v)", err)
	}
	mine, err := f.p.Instances(ctx, f.project)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mine {
		if r.ID == srv.ID {
			t.Fatalf("project %s lists project %s's server %s", f.project, other, srv.ID)
		}
	}
	if _, err := f.p.Instance(ctx, f.project, srv.ID); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Errorf("Instance of another project's server: %v, want ErrInstanceNotFound", err)
	}
	if _, err := f.p.DependentResources(ctx, f.project, plugins.Resource{ID: srv.ID, Type: Type}); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Errorf("DependentResources of another project's server: %v, want ErrInstanceNotFound", err)
	}
	_, err = f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: f.project, Resource: plugins.Resource{ID: srv.ID, Type: Type}})
	if !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Errorf("Protect of another project's server: %v, want ErrInstanceNotFound", err)
	}
	if n := f.cairnSnapshots(t, root.ID); n != 0 {
		t.Errorf("the other project's volume got %d cairn snapshots", n)
	}
}
