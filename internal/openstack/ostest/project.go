package ostest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"
)

// Project is a second project of the test cloud, with a member of its
// own; the admin of the cloud's env also holds a role in it.
type Project struct {
	ID, User, Password string
}

// OtherProject creates a project and a user with role "member" in it
// (the admin user gets "admin" there too), deleted when the test ends.
// Env must have run.
func OtherProject(t testing.TB) Project {
	t.Helper()
	ctx := context.Background()
	id := identity(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	p, err := projects.Create(ctx, id, projects.CreateOpts{Name: "cairn-other-" + suffix, DomainID: "default"}).Extract()
	if err != nil {
		t.Fatalf("create project: %v", err)
	}
	t.Cleanup(func() { _ = projects.Delete(context.Background(), id, p.ID).ExtractErr() })
	out := Project{ID: p.ID, User: "cairn-other-" + suffix, Password: "pw-" + suffix}
	u, err := users.Create(ctx, id, users.CreateOpts{Name: out.User, Password: out.Password, DomainID: "default",
		DefaultProjectID: p.ID}).Extract()
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	t.Cleanup(func() { _ = users.Delete(context.Background(), id, u.ID).ExtractErr() })
	role := func(name string) string {
		pages, err := roles.List(id, roles.ListOpts{Name: name}).AllPages(ctx)
		if err != nil {
			t.Fatalf("list roles: %v", err)
		}
		rs, err := roles.ExtractRoles(pages)
		if err != nil || len(rs) == 0 {
			t.Fatalf("role %s: %v (%d found)", name, err, len(rs))
		}
		return rs[0].ID
	}
	if err := roles.Assign(ctx, id, role("member"), roles.AssignOpts{UserID: u.ID, ProjectID: p.ID}).ExtractErr(); err != nil {
		t.Fatalf("assign member: %v", err)
	}
	admin, err := tokens.Get(ctx, id, id.Token()).ExtractUser()
	if err != nil {
		t.Fatalf("admin user: %v", err)
	}
	if err := roles.Assign(ctx, id, role("admin"), roles.AssignOpts{UserID: admin.ID, ProjectID: p.ID}).ExtractErr(); err != nil {
		t.Fatalf("assign admin: %v", err)
	}
	return out
}

// identity is the admin's identity client, from the env's OS_* variables.
func identity(t testing.TB) *gophercloud.ServiceClient {
	t.Helper()
	id, err := openstack.NewIdentityV3(Admin(t), gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
