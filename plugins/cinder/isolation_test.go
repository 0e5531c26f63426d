//go:build ceph

package cinder

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	gopenstack "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"cairn/internal/openstack"
	"cairn/plugins"
)

// otherProject creates a Keystone project in which the admin user holds
// the admin role, removed when the test ends.
func otherProject(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	pc, err := gopenstack.NewClient(os.Getenv("OS_AUTH_URL"))
	if err != nil {
		t.Fatal(err)
	}
	cloudAuth := gophercloud.AuthOptions{IdentityEndpoint: os.Getenv("OS_AUTH_URL"), Username: os.Getenv("OS_USERNAME"),
		Password: os.Getenv("OS_PASSWORD"), DomainName: "Default",
		Scope: &gophercloud.AuthScope{ProjectName: os.Getenv("OS_PROJECT_NAME"), DomainName: "Default"}}
	if err := gopenstack.Authenticate(ctx, pc, cloudAuth); err != nil {
		t.Fatal(err)
	}
	ic, err := gopenstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	user, err := tokens.Get(ctx, ic, pc.Token()).ExtractUser()
	if err != nil {
		t.Fatal(err)
	}
	p, err := projects.Create(ctx, ic, projects.CreateOpts{Name: "cairn-other-" + t.Name(), DomainID: "default"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = projects.Delete(context.Background(), ic, p.ID).ExtractErr() })
	pages, err := roles.List(ic, roles.ListOpts{Name: "admin"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := roles.ExtractRoles(pages)
	if err != nil || len(rs) != 1 {
		t.Fatalf("role admin: %v, %v", rs, err)
	}
	if err := roles.Assign(ctx, ic, rs[0].ID, roles.AssignOpts{UserID: user.ID, ProjectID: p.ID}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// TestProjectIsolation: a volume of another project is neither listed
// nor found, protected or restored over through the first project.
func TestProjectIsolation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other := otherProject(t)
	oc, err := f.p.cloud.Cinder(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := oc.CreateVolume(ctx, openstack.VolumeSpec{Name: "cairn-other-volume", SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = oc.DeleteVolume(context.Background(), ov.ID) })

	mine, err := f.p.Instances(ctx, f.project)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mine {
		if r.ID == ov.ID {
			t.Fatalf("project %s lists project %s's volume %s", f.project, other, ov.ID)
		}
	}
	if _, err := f.p.Instance(ctx, f.project, ov.ID); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Errorf("Instance of another project's volume: %v, want ErrInstanceNotFound", err)
	}
	_, err = f.p.Protect(ctx, f.repo, plugins.ProtectRequest{Project: f.project, Resource: plugins.Resource{ID: ov.ID, Type: Type}})
	if !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Errorf("Protect of another project's volume: %v, want ErrInstanceNotFound", err)
	}
	theirs, err := f.p.Instances(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if len(theirs) != 1 || theirs[0].ID != ov.ID {
		t.Errorf("instances of project %s: %+v, want only its volume %s", other, theirs, ov.ID)
	}
}
