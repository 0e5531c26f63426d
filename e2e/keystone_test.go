package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/endpoints"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/services"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"

	"cairn/internal/testenv"
)

// keystoneEnv reads the env file of the throwaway Keystone that
// scripts/keystone.sh started (make test exports its path in
// CAIRN_TEST_KEYSTONE_ENV). Without one the test is skipped, or fails
// under CAIRN_REQUIRE_ALL=1.
func keystoneEnv(t *testing.T) map[string]string {
	t.Helper()
	path := testenv.Lookup(t, "CAIRN_TEST_KEYSTONE_ENV", "Keystone", "set it to the env file that scripts/keystone.sh start DIR prints (make test does)")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("CAIRN_TEST_KEYSTONE_ENV: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.HasPrefix(k, "OS_") {
			env[k] = strings.Trim(v, `"'`)
		}
	}
	if env["OS_AUTH_URL"] == "" || env["OS_PASSWORD"] == "" {
		t.Fatalf("%s lacks OS_AUTH_URL or OS_PASSWORD: %v", path, env)
	}
	return env
}

// keystoneAdmin is an identity v3 client acting as Keystone's admin.
type keystoneAdmin struct {
	t   *testing.T
	ctx context.Context
	id  *gophercloud.ServiceClient
	url string
}

func newKeystoneAdmin(t *testing.T, env map[string]string) *keystoneAdmin {
	t.Helper()
	ctx := context.Background()
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: env["OS_AUTH_URL"],
		Username: env["OS_USERNAME"], Password: env["OS_PASSWORD"], DomainName: "Default",
		Scope: &gophercloud.AuthScope{ProjectName: env["OS_PROJECT_NAME"], DomainName: "Default"}})
	if err != nil {
		t.Fatalf("log in to Keystone as admin: %v", err)
	}
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	return &keystoneAdmin{t: t, ctx: ctx, id: ic, url: env["OS_AUTH_URL"]}
}

func (k *keystoneAdmin) project(name string) string {
	k.t.Helper()
	p, err := projects.Create(k.ctx, k.id, projects.CreateOpts{Name: name, DomainID: "default"}).Extract()
	if err != nil {
		k.t.Fatalf("create project %s: %v", name, err)
	}
	k.t.Cleanup(func() { _ = projects.Delete(k.ctx, k.id, p.ID).ExtractErr() })
	return p.ID
}

func (k *keystoneAdmin) role(name string) string {
	k.t.Helper()
	pages, err := roles.List(k.id, roles.ListOpts{Name: name}).AllPages(k.ctx)
	if err != nil {
		k.t.Fatal(err)
	}
	rs, err := roles.ExtractRoles(pages)
	if err != nil || len(rs) != 1 {
		k.t.Fatalf("role %s: %v (%d found)", name, err, len(rs))
	}
	return rs[0].ID
}

// user creates a user holding role in project.
func (k *keystoneAdmin) user(name, password, project, role string) string {
	k.t.Helper()
	u, err := users.Create(k.ctx, k.id, users.CreateOpts{Name: name, Password: password, DomainID: "default", DefaultProjectID: project}).Extract()
	if err != nil {
		k.t.Fatalf("create user %s: %v", name, err)
	}
	k.t.Cleanup(func() { _ = users.Delete(k.ctx, k.id, u.ID).ExtractErr() })
	if err := roles.Assign(k.ctx, k.id, k.role(role), roles.AssignOpts{UserID: u.ID, ProjectID: project}).ExtractErr(); err != nil {
		k.t.Fatalf("give %s role %s: %v", name, role, err)
	}
	return u.ID
}

// register puts the appliance in the catalog as service type
// data-protect, which is where the karbor client looks.
func (k *keystoneAdmin) register(base string) {
	k.t.Helper()
	svc, err := services.Create(k.ctx, k.id, services.CreateOpts{Type: "data-protect", Extra: map[string]any{"name": "cairn"}}).Extract()
	if err != nil {
		k.t.Fatalf("create service: %v", err)
	}
	k.t.Cleanup(func() { _ = services.Delete(k.ctx, k.id, svc.ID).ExtractErr() })
	for _, av := range []gophercloud.Availability{gophercloud.AvailabilityPublic, gophercloud.AvailabilityInternal} {
		ep, err := endpoints.Create(k.ctx, k.id, endpoints.CreateOpts{Availability: av, Region: "RegionOne",
			URL: base + "/v1/$(project_id)s", ServiceID: svc.ID}).Extract()
		if err != nil {
			k.t.Fatalf("create endpoint: %v", err)
		}
		k.t.Cleanup(func() { _ = endpoints.Delete(k.ctx, k.id, ep.ID).ExtractErr() })
	}
}

// token logs in as user to project and returns a project-scoped token.
func (k *keystoneAdmin) token(user, password, project string) string {
	k.t.Helper()
	pc, err := openstack.NewClient(k.url)
	if err != nil {
		k.t.Fatal(err)
	}
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		k.t.Fatal(err)
	}
	tok, err := tokens.Create(k.ctx, ic, &tokens.AuthOptions{Username: user, Password: password, DomainName: "Default",
		Scope: tokens.Scope{ProjectID: project}}).ExtractTokenID()
	if err != nil {
		k.t.Fatalf("token for %s: %v", user, err)
	}
	return tok
}

// systemToken logs in as user with a system-scoped token.
func (k *keystoneAdmin) systemToken(user, password string) string {
	k.t.Helper()
	pc, err := openstack.NewClient(k.url)
	if err != nil {
		k.t.Fatal(err)
	}
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		k.t.Fatal(err)
	}
	tok, err := tokens.Create(k.ctx, ic, &tokens.AuthOptions{Username: user, Password: password, DomainName: "Default",
		Scope: tokens.Scope{System: true}}).ExtractTokenID()
	if err != nil {
		k.t.Fatalf("system-scoped token for %s: %v", user, err)
	}
	return tok
}

// get sends GET (or method with body) to the appliance with token and
// returns the status and body.
func authCall(t *testing.T, a *appliance, token, method, path string, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestKeystone runs cairn serve with auth "keystone" against a real
// Keystone. The karbor client logs in with ordinary OpenStack
// credentials, finds cairn in the catalog, and protects and restores a
// file of its project; tokens of another project, of no project, forged
// or missing are refused, and only an admin crosses projects or sets
// quotas.
func TestKeystone(t *testing.T) {
	env := keystoneEnv(t)
	bin := requireKarbor(t)
	ks := newKeystoneAdmin(t, env)
	sfx := randomSuffix()
	projA, projB := ks.project("cairn-a-"+sfx), ks.project("cairn-b-"+sfx)
	adminProject := ks.project("cairn-svc-" + sfx)
	const pw = "pw-for-tests"
	ks.user("alice-"+sfx, pw, projA, "member")
	ks.user("bob-"+sfx, pw, projB, "member")
	ks.user("cairn-"+sfx, pw, adminProject, "admin") // the service user; also our admin
	// An "admin" role in an ordinary project: a member there, no more.
	ks.user("mallory-"+sfx, pw, projB, "admin")

	dir := t.TempDir()
	for _, p := range []string{projA, projB} {
		if err := os.MkdirAll(filepath.Join(dir, "volumes", p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fileA := filepath.Join(dir, "volumes", projA, "a.img")
	fileB := filepath.Join(dir, "volumes", projB, "b.img")
	writeRandomFile(t, fileA, 11, 3*mib+77)
	writeRandomFile(t, fileB, 12, mib)
	pwFile := filepath.Join(dir, "keystone-password")
	writeFile(t, pwFile, []byte(pw+"\n"))
	a := startAppliance(t, dir, map[string]any{
		"auth": "keystone",
		"keystone": map[string]any{"auth_url": env["OS_AUTH_URL"], "username": "cairn-" + sfx, "password_file": pwFile,
			"project_name": "cairn-svc-" + sfx, "cache_ttl": "30s", "admin_project": "cairn-svc-" + sfx},
		"file_roots":  []string{filepath.Join(dir, "volumes", "{project_id}")},
		"restore_dir": filepath.Join(dir, "restores", "{project_id}"),
	})
	ks.register(a.base())

	osEnv := func(user, project string) []string {
		return []string{"OS_AUTH_URL=" + env["OS_AUTH_URL"], "OS_USERNAME=" + user, "OS_PASSWORD=" + pw,
			"OS_PROJECT_NAME=" + project, "OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default",
			"OS_IDENTITY_API_VERSION=3", "OS_REGION_NAME=RegionOne", "OS_INTERFACE=public"}
	}
	alice := karborCLI{t: t, bin: bin, a: a, osEnv: osEnv("alice-"+sfx, "cairn-a-"+sfx)}
	bob := karborCLI{t: t, bin: bin, a: a, osEnv: osEnv("bob-"+sfx, "cairn-b-"+sfx)}

	// Alice sees her project's file only, and protects and restores it.
	if provs := alice.table("provider-list"); !slices.Contains(column(provs, "Id"), karborProvider) {
		t.Fatalf("provider-list through the catalog lacks the cairn provider: %v", provs)
	}
	var idA string
	for _, r := range alice.table("protectable-list-instances", fileType) {
		if r["Name"] == fileB {
			t.Fatalf("alice lists bob's file %s", fileB)
		}
		if r["Name"] == fileA {
			idA = r["Id"]
		}
	}
	if idA == "" {
		t.Fatalf("alice does not see her file %s", fileA)
	}
	plan := alice.dict("plan-create", "ks-plan", karborProvider, fmt.Sprintf("%s=%s=%s", idA, fileType, fileA))
	cp := alice.dict("checkpoint-create", karborProvider, plan["id"])
	deadline := time.Now().Add(2 * time.Minute)
	for cp["status"] == "protecting" {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint still protecting: %v", cp)
		}
		time.Sleep(300 * time.Millisecond)
		cp = alice.dict("checkpoint-show", karborProvider, cp["id"])
	}
	if cp["status"] != "available" {
		t.Fatalf("checkpoint ended %q: %v\ndaemon stderr: %s", cp["status"], cp, clip(a.stderr.String()))
	}
	out := filepath.Join(dir, "restores", projA, "a.out")
	rs := alice.dict("restore-create", karborProvider, cp["id"],
		"--parameters", fmt.Sprintf("resource_type=%s,resource_id=%s,restore_path=%s", fileType, idA, out))
	for rs["status"] == "in_progress" {
		if time.Now().After(deadline) {
			t.Fatalf("restore still in progress: %v", rs)
		}
		time.Sleep(300 * time.Millisecond)
		rs = alice.dict("restore-show", rs["id"])
	}
	if rs["status"] != "success" || fileHash(t, out) != fileHash(t, fileA) {
		t.Fatalf("restore %v: status %q, or %s differs from %s", rs["id"], rs["status"], out, fileA)
	}

	// Bob, in his own project, finds nothing of Alice's and cannot restore
	// into her directory.
	if r := bob.run("checkpoint-show", karborProvider, cp["id"]); r.code == 0 {
		t.Fatalf("bob sees alice's checkpoint:\n%s", r)
	}
	if rows := bob.table("plan-list"); len(rows) != 0 {
		t.Fatalf("bob lists plans %v", rows)
	}

	// The raw API: scoping, refusals and the admin role.
	tokA := ks.token("alice-"+sfx, pw, projA)
	tokAdmin := ks.token("cairn-"+sfx, pw, adminProject)
	tokTenantAdmin := ks.token("mallory-"+sfx, pw, projB)
	// keystone-manage bootstrap gives its admin the admin role on the system.
	tokSystem := ks.systemToken(env["OS_USERNAME"], env["OS_PASSWORD"])
	quota := `{"quota": {"plans": 7}}`
	cases := []struct {
		name, token, method, path, body string
		want                            int
		contains                        string // in the body, when set
	}{
		{"alice, own plans", tokA, "GET", "/v1/" + projA + "/plans", "", 200, ""},
		{"alice, bob's plans", tokA, "GET", "/v1/" + projB + "/plans", "", 403, ""},
		{"alice, bob's files", tokA, "GET", "/v1/" + projB + "/protectables/" + fileType + "/instances", "", 403, ""},
		{"no token", "", "GET", "/v1/" + projA + "/plans", "", 401, ""},
		{"forged token", "gAAAAAforged", "GET", "/v1/" + projA + "/plans", "", 401, ""},
		{"admin, alice's plans", tokAdmin, "GET", "/v1/" + projA + "/plans", "", 200, plan["id"]},
		{"admin, every project's plans", tokAdmin, "GET", "/v1/" + adminProject + "/plans?all_tenants=1", "", 200, plan["id"]},
		{"alice, every project's plans", tokA, "GET", "/v1/" + projA + "/plans?all_tenants=1", "", 403, ""},
		{"alice sets her quota", tokA, "PUT", "/v1/" + projA + "/quotas/" + projA, quota, 403, ""},
		{"admin sets alice's quota", tokAdmin, "PUT", "/v1/" + projA + "/quotas/" + projA, quota, 200, ""},
		{"system admin, alice's plans", tokSystem, "GET", "/v1/" + projA + "/plans", "", 200, plan["id"]},
		{"tenant admin, own plans", tokTenantAdmin, "GET", "/v1/" + projB + "/plans", "", 200, ""},
		{"tenant admin, alice's plans", tokTenantAdmin, "GET", "/v1/" + projA + "/plans", "", 403, ""},
		{"tenant admin, every project's plans", tokTenantAdmin, "GET", "/v1/" + projB + "/plans?all_tenants=1", "", 403, ""},
		{"tenant admin sets its quota", tokTenantAdmin, "PUT", "/v1/" + projB + "/quotas/" + projB, quota, 403, ""},
	}
	for _, c := range cases {
		code, body := authCall(t, a, c.token, c.method, c.path, c.body)
		if code != c.want {
			t.Errorf("%s: %s %s: %d, want %d: %s", c.name, c.method, c.path, code, c.want, clip(body))
		}
		if c.contains != "" && !strings.Contains(body, c.contains) {
			t.Errorf("%s: the answer lacks %s: %s", c.name, c.contains, clip(body))
		}
	}

	// The form: a token and the endpoint given outright.
	withToken := karborCLI{t: t, bin: bin, a: a, project: projA, token: tokA}
	if rows := withToken.table("plan-list"); !slices.Contains(column(rows, "Id"), plan["id"]) {
		t.Fatalf("karbor --os-auth-token TOKEN --karbor-url URL plan-list: %v, want alice's plan %s", rows, plan["id"])
	}
	forged := karborCLI{t: t, bin: bin, a: a, project: projA, token: "gAAAAAforged"}
	if r := forged.run("plan-list"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "401") {
		t.Fatalf("karbor with a forged token: want a failure naming the 401:\n%s", r)
	}

	// cairn's own client logs in with the same OS_* variables and lands
	// in Alice's project.
	cmd := exec.Command(cairnBin, "--json", "plan", "list", "--url", a.base())
	cmd.Env = append(withoutOSEnv(os.Environ()), osEnv("alice-"+sfx, "cairn-a-"+sfx)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cairn plan list with Keystone credentials: %v\n%s", err, b)
	}
	var plans []map[string]any
	if err := json.Unmarshal(b, &plans); err != nil || len(plans) != 1 || plans[0]["id"] != plan["id"] {
		t.Fatalf("cairn plan list: %v: %s (want alice's one plan %s)", err, b, plan["id"])
	}
}
