package ostest

import (
	"context"
	"os"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
)

// Admin authenticates the admin of the cloud's env (the OS_* variables
// Env sets) in its own project.
func Admin(t testing.TB) *gophercloud.ProviderClient {
	t.Helper()
	pc, err := openstack.AuthenticatedClient(context.Background(), gophercloud.AuthOptions{
		IdentityEndpoint: os.Getenv("OS_AUTH_URL"), Username: os.Getenv("OS_USERNAME"),
		Password: os.Getenv("OS_PASSWORD"), DomainName: "Default",
		Scope: &gophercloud.AuthScope{ProjectName: os.Getenv("OS_PROJECT_NAME"), DomainName: "Default"}})
	if err != nil {
		t.Fatalf("authenticate the admin: %v", err)
	}
	return pc
}

// Flavor creates a public flavor named name (the test cloud has none),
// deleted when the test ends, and returns its ID.
func Flavor(t testing.TB, name string) string {
	t.Helper()
	ctx := context.Background()
	sc, err := openstack.NewComputeV2(Admin(t), gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	public, disk := true, 1
	fl, err := flavors.Create(ctx, sc, flavors.CreateOpts{Name: name, VCPUs: 1, RAM: 64, Disk: &disk, IsPublic: &public}).Extract()
	if err != nil {
		t.Fatalf("flavor %s: %v", name, err)
	}
	t.Cleanup(func() { _ = flavors.Delete(context.Background(), sc, fl.ID).ExtractErr() })
	return fl.ID
}
