//go:build ceph

package glance

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"cairn/blockdev"
	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/internal/openstack/ostest"
	"cairn/plugins"
)

// memJournal is a Journal in memory.
type memJournal struct {
	mu sync.Mutex
	m  map[string]Entry
}

func (j *memJournal) Record(_ context.Context, e Entry) error {
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

func (j *memJournal) Entries(_ context.Context, project string) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Entry
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

// fixture is the plugin over the test cloud, a fresh repository and the
// admin project's Glance.
type fixture struct {
	p       *Plugin
	j       *memJournal
	cloud   *openstack.Cloud
	repo    *dedup.Repository
	g       *openstack.Glance
	project string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := ostest.Env(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true, WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{j: &memJournal{m: map[string]Entry{}}, cloud: cloud}
	f.p, err = New(Config{Cloud: cloud, Journal: f.j, Ceph: cephrbd.ConnOptions{Conf: env["CEPH_CONF"]}, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.p.Close() })
	f.repo, err = dedup.Init(ctx, filepath.Join(t.TempDir(), "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.repo.Close() })
	if f.g, err = cloud.Glance(ctx, ""); err != nil {
		t.Fatal(err)
	}
	return f
}

// image creates an active image of data, deleted when the test ends.
func (f *fixture) image(t *testing.T, o images.CreateOpts, data []byte) *openstack.Image {
	t.Helper()
	ctx := context.Background()
	im, err := f.g.CreateImage(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	f.cleanup(t, im.ID)
	if err := f.g.Upload(ctx, im.ID, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if im, err = f.g.WaitImage(ctx, im.ID); err != nil {
		t.Fatal(err)
	}
	if f.project == "" {
		f.project = im.Owner
	}
	return im
}

func (f *fixture) cleanup(t *testing.T, id string) {
	t.Cleanup(func() {
		ctx := context.Background()
		_ = f.g.SetProtected(ctx, id, false)
		if err := f.g.DeleteImage(ctx, id); err != nil {
			t.Errorf("clean up image %s: %v", id, err)
		}
	})
}

func (f *fixture) download(t *testing.T, id string) []byte {
	t.Helper()
	rc, err := f.g.Download(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomData(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	// a run of zeros, which the repository stores as nothing
	clear(b[n/3 : n/2])
	return b
}

// TestGlanceProtectRestore protects an image on each read path, restores
// it to a new image and compares bytes (as Glance serves them) and
// properties.
func TestGlanceProtectRestore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data := randomData(5<<20 + 12345)
	vis := images.ImageVisibilityPrivate
	orig := f.image(t, images.CreateOpts{Name: "cairn-test-image", DiskFormat: "raw", ContainerFormat: "bare",
		MinDisk: 1, MinRAM: 64, Visibility: &vis, Tags: []string{"gold", "base"},
		Properties: map[string]string{"hw_disk_bus": "scsi", "os_distro": "cirros"}}, data)
	if _, ok := openstack.ImageRBDLocation(orig); !ok {
		t.Fatalf("the test cloud's Glance shows no rbd:// location for image %s (show_image_direct_url): %v", orig.ID, orig.Properties)
	}
	for _, tc := range []struct {
		name    string
		options map[string]any
		read    string
	}{
		{"rbd", nil, ReadRBD},
		{"api", map[string]any{"through_api": "true"}, ReadAPI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.p.Instance(ctx, f.project, orig.ID)
			if err != nil {
				t.Fatal(err)
			}
			b, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: f.project, Resource: res, Options: tc.options,
				Tags: map[string]string{"test": "1"}})
			if err != nil {
				t.Fatal(err)
			}
			cp, _, err := f.repo.LoadCheckpoint(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if cp.Tags[TagRead] != tc.read || cp.Size != int64(len(data)) || cp.Tags["test"] != "1" {
				t.Fatalf("checkpoint read %q size %d tags %v; want read %q size %d", cp.Tags[TagRead], cp.Size, cp.Tags, tc.read, len(data))
			}
			if err := f.p.Verify(ctx, f.repo, b.ID); err != nil {
				t.Fatal(err)
			}
			id, err := f.p.Restore(ctx, f.repo, plugins.RestoreRequest{Project: f.project, Resource: res, BackupID: b.ID})
			if err != nil {
				t.Fatal(err)
			}
			f.cleanup(t, id)
			if got := f.download(t, id); !bytes.Equal(got, data) {
				t.Fatalf("restored image %s: %d bytes differ from the original's %d", id, len(got), len(data))
			}
			restored, err := f.g.Image(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want, got := savedOf(orig), savedOf(restored)
			if got.Name != orig.Name+"-restore-"+b.ID[:8] {
				t.Fatalf("restored name %q", got.Name)
			}
			got.Name = want.Name
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("restored properties\n%+v\nwant\n%+v", got, want)
			}
			if restored.Checksum != orig.Checksum || restored.Owner != f.project {
				t.Fatalf("restored checksum %s owner %s, want %s %s", restored.Checksum, restored.Owner, orig.Checksum, f.project)
			}
			if _, ok := restored.Properties[MetaJournal]; ok || f.j.len() != 0 {
				t.Fatalf("the journal property or entry stayed: %v, %d entries", restored.Properties, f.j.len())
			}
		})
	}
}

// TestGlanceProjectIsolation: another project neither sees nor can
// protect the admin project's private image, through Glance or the
// plugin, and the plugin lists only a project's own images.
func TestGlanceProjectIsolation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	vis := images.ImageVisibilityPrivate
	im := f.image(t, images.CreateOpts{Name: "cairn-private", DiskFormat: "raw", ContainerFormat: "bare", Visibility: &vis},
		randomData(1<<20))
	other := ostest.OtherProject(t)

	// The other project's own user: Glance answers 404.
	oc, err := openstack.New(openstack.Config{AuthURL: os.Getenv("OS_AUTH_URL"), Username: other.User, Password: other.Password,
		ProjectName: "", UserDomainName: "Default"})
	if err != nil {
		t.Fatal(err)
	}
	og, err := oc.Glance(ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := og.Image(ctx, im.ID); !errors.Is(err, openstack.ErrNotFound) {
		t.Fatalf("the other project's user got image %s: err %v", im.ID, err)
	}
	// The plugin for the other project, with the admin's credentials
	// (Glance shows an admin every image): the owner check holds.
	if _, err := f.p.Instance(ctx, other.ID, im.ID); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("Instance in the other project: %v, want ErrInstanceNotFound", err)
	}
	res := plugins.Resource{ID: im.ID, Type: Type}
	if _, err := f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: other.ID, Resource: res}); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("Protect in the other project: %v, want ErrInstanceNotFound", err)
	}
	for _, project := range []string{other.ID, f.project} {
		rs, err := f.p.Instances(ctx, project)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range rs {
			found = found || r.ID == im.ID
		}
		if found != (project == f.project) {
			t.Fatalf("Instances of project %s lists image %s: %v", project, im.ID, found)
		}
	}
}

// TestGlanceRecover: an image a crashed restore left (journal entry and
// property) is deleted at the next start; others stay.
func TestGlanceRecover(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	keep := f.image(t, images.CreateOpts{Name: "cairn-keep", DiskFormat: "raw", ContainerFormat: "bare"}, randomData(4096))
	e, err := f.p.record(ctx, f.project, keep.ID, "half-restored")
	if err != nil {
		t.Fatal(err)
	}
	left, err := f.g.CreateImage(ctx, Saved{DiskFormat: "raw", ContainerFormat: "bare"}.createOpts("half-restored", e.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.Recover(ctx, f.project, f.repo); err != nil {
		t.Fatal(err)
	}
	if _, err := f.g.Image(ctx, left.ID); !errors.Is(err, openstack.ErrNotFound) {
		_ = f.g.DeleteImage(ctx, left.ID)
		t.Fatalf("the crashed restore's image %s stayed: %v", left.ID, err)
	}
	if _, err := f.g.Image(ctx, keep.ID); err != nil || f.j.len() != 0 {
		t.Fatalf("image %s: %v; %d journal entries", keep.ID, err, f.j.len())
	}
}

// TestGlanceVerifyChecksum: Verify compares the backup's data with the
// image's saved MD5, not only that it reads; no cloud needed.
func TestGlanceVerifyChecksum(t *testing.T) {
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{AuthURL: "http://127.0.0.1:9/v3", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Cloud: cloud, Journal: &memJournal{m: map[string]Entry{}}})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := dedup.Init(ctx, filepath.Join(t.TempDir(), "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	data := randomData(300 << 10)
	path := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	for name, tc := range map[string]struct {
		checksum string
		want     error
	}{
		"right": {hex.EncodeToString(sum[:]), nil},
		"wrong": {strings.Repeat("0", 32), ErrChecksum},
	} {
		t.Run(name, func(t *testing.T) {
			src, err := blockdev.OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			cp, err := repo.Backup(ctx, src, dedup.BackupOptions{Tags: map[string]string{TagImage: "i", TagChecksum: tc.checksum}})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(ctx, repo, cp.ID); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}
