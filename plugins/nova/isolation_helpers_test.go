//go:build ceph

package nova

import (
	"context"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	gopenstack "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"cairn/internal/openstack/ostest"
)

// otherProject creates a Keystone project in which the admin user holds
// the admin role, removed when the test ends.
func otherProject(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	pc := ostest.Admin(t)
	ic, err := gopenstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	user, err := tokens.Get(ctx, ic, pc.Token()).ExtractUser()
	if err != nil {
		t.Fatal(err)
	}
	p, err := projects.Create(ctx, ic, projects.CreateOpts{Name: "cairn-nova-other-" + t.Name(), DomainID: "default"}).Extract()
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
