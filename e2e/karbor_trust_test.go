//go:build ceph

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/trusts"

	"cairn/internal/openstack"
)

// TestKarborScheduledTrust runs cairn serve with Keystone auth and a
// cloud user that has no role in the project it protects on schedule:
// the scheduled operation of a member (alice) acts through the Keystone
// trust made at its creation, after alice's token was revoked, and
// protects her Cinder volume; the operation of another member (bob),
// whose role was then taken away, fails with an operation log naming its
// trust and what to do. Deleting alice's operation deletes her trust.
func TestKarborScheduledTrust(t *testing.T) {
	c := requireCinder(t)
	env := c.env
	ks := newKeystoneAdmin(t, env)
	ctx := context.Background()
	sfx := randomSuffix()
	const pw = "pw-for-trusts"
	proj := ks.project("cairn-trust-" + sfx)
	svcProject := ks.project("cairn-trust-svc-" + sfx)
	alice := ks.user("alice-"+sfx, pw, proj, "member")
	bob := ks.user("bob-"+sfx, pw, proj, "member")
	// The cloud user: a member of its own project, and of alice's only
	// while her plan is made (plans check their resources as the cloud
	// user).
	cloudUser := ks.user("cairn-cloud-"+sfx, pw, svcProject, "member")
	member := roles.AssignOpts{UserID: cloudUser, ProjectID: proj}
	if err := roles.Assign(ctx, ks.id, ks.role("member"), member).ExtractErr(); err != nil {
		t.Fatal(err)
	}

	// Alice's volume, made by alice.
	ac, err := openstack.New(openstack.Config{AuthURL: env["OS_AUTH_URL"], Username: "alice-" + sfx, Password: pw,
		UserDomainName: "Default", WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	acin, err := ac.Cinder(ctx, proj)
	if err != nil {
		t.Fatal(err)
	}
	vol, err := acin.CreateVolume(ctx, openstack.VolumeSpec{Name: "e2e-trust", SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		ss, err := acin.Snapshots(ctx, vol.ID)
		if err != nil {
			t.Errorf("clean up: snapshots of volume %s: %v", vol.ID, err)
		}
		for _, s := range ss {
			if err := acin.DeleteSnapshot(ctx, s.ID); err != nil {
				t.Errorf("clean up: %v", err)
			}
		}
		if err := acin.DeleteVolume(ctx, vol.ID); err != nil {
			v, _ := acin.Volume(ctx, vol.ID)
			as, _ := acin.Attachments(ctx, vol.ID)
			t.Errorf("clean up volume %s (%+v, attachments %+v, snapshots %+v): %v", vol.ID, v, as, ss, err)
		}
	})
	c.rbd.write("volume-"+vol.ID, 0, randomBytes(51, int(4*mib)))

	dir := t.TempDir()
	adminPw, cloudPw := filepath.Join(dir, "admin-password"), filepath.Join(dir, "cloud-password")
	writeFile(t, adminPw, []byte(env["OS_PASSWORD"]+"\n"))
	writeFile(t, cloudPw, []byte(pw+"\n"))
	cfg := map[string]any{"auth": "keystone", "ceph_conf": env["CEPH_CONF"],
		"keystone": map[string]any{"auth_url": env["OS_AUTH_URL"], "username": env["OS_USERNAME"], "password_file": adminPw,
			"project_name": env["OS_PROJECT_NAME"], "cache_ttl": "5s"},
		"cloud": map[string]any{"auth_url": env["OS_AUTH_URL"], "username": "cairn-cloud-" + sfx, "password_file": cloudPw,
			"user_domain_name": "Default", "region": env["OS_REGION_NAME"], "wait_timeout": "2m"}}
	a := startAppliance(t, dir, cfg)
	call := func(token, method, path string, v any) (int, map[string]any) {
		t.Helper()
		var body string
		if v != nil {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			body = string(b)
		}
		code, out := authCall(t, a, token, method, "/v1/"+proj+path, body)
		var m map[string]any
		_ = json.Unmarshal([]byte(out), &m)
		return code, m
	}
	tokAlice := ks.token("alice-"+sfx, pw, proj)
	code, m := call(tokAlice, "POST", "/plans", map[string]any{"plan": map[string]any{"name": "trusted", "provider_id": karborProvider,
		"resources": []map[string]any{{"id": vol.ID, "type": cinderType, "name": vol.Name}}, "parameters": map[string]any{}}})
	if code != 200 {
		t.Fatalf("plan-create: %d %v", code, m)
	}
	plan := m["plan"].(map[string]any)["id"].(string)

	// From here on the cloud user has no role in the project; a new
	// daemon holds no client it made with one.
	if err := roles.Unassign(ctx, ks.id, ks.role("member"), roles.UnassignOpts{UserID: cloudUser, ProjectID: proj}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Create(ctx, ks.id, &tokens.AuthOptions{Username: "cairn-cloud-" + sfx, Password: pw, DomainName: "Default",
		Scope: tokens.Scope{ProjectID: proj}}).ExtractTokenID(); err == nil {
		t.Fatal("the cloud user still gets a token of the project after its role was removed")
	}
	a.stop()
	a = startAppliance(t, dir, cfg)

	code, m = call(tokAlice, "POST", "/triggers", map[string]any{"trigger_info": map[string]any{"name": "every-minute", "type": "time",
		"properties": map[string]any{"pattern": "* * * * *", "format": "crontab"}}})
	if code != 200 {
		t.Fatalf("trigger-create: %d %v", code, m)
	}
	trig := m["trigger_info"].(map[string]any)["id"].(string)
	createOp := func(token, name string) string {
		t.Helper()
		code, m := call(token, "POST", "/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
			"name": name, "operation_type": "protect", "trigger_id": trig,
			"operation_definition": map[string]any{"plan_id": plan, "provider_id": karborProvider}}})
		if code != 200 {
			t.Fatalf("scheduled-operation-create as %s: %d %v", name, code, m)
		}
		op := m["scheduled_operation"].(map[string]any)
		if _, ok := op["trust_id"]; ok {
			t.Errorf("scheduled operation on the wire shows its trust: %v", op)
		}
		return op["id"].(string)
	}
	tokBob := ks.token("bob-"+sfx, pw, proj)
	opAlice, opBob := createOp(tokAlice, "alice"), createOp(tokBob, "bob")

	// Each operation's trust, as Keystone's admin sees it.
	trustOf := func(trustor string) trusts.Trust {
		t.Helper()
		pages, err := trusts.List(ks.id, trusts.ListOpts{TrustorUserID: trustor}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := trusts.ExtractTrusts(pages)
		if err != nil || len(ts) != 1 {
			t.Fatalf("trusts of %s: %+v, %v; want one", trustor, ts, err)
		}
		return ts[0]
	}
	ta, tb := trustOf(alice), trustOf(bob)
	if ta.TrusteeUserID != cloudUser || ta.ProjectID != proj || !ta.Impersonation || !ta.ExpiresAt.IsZero() {
		t.Fatalf("alice's trust %+v: want trustee %s (the cloud user), project %s, impersonation, no expiry", ta, cloudUser, proj)
	}
	rs, err := trusts.ListRoles(ks.id, ta.ID).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if delegated, err := trusts.ExtractRoles(rs); err != nil || !slices.ContainsFunc(delegated, func(r trusts.Role) bool { return r.Name == "member" }) {
		t.Fatalf("roles of alice's trust: %+v, %v; want member", delegated, err)
	}

	// Alice's token goes; bob loses his role (and with it his trust).
	if err := tokens.Revoke(ctx, ks.id, tokAlice).Err; err != nil {
		t.Fatal(err)
	}
	if err := roles.Unassign(ctx, ks.id, ks.role("member"), roles.UnassignOpts{UserID: bob, ProjectID: proj}).ExtractErr(); err != nil {
		t.Fatal(err)
	}

	// The next minute's runs.
	tokAlice = ks.token("alice-"+sfx, pw, proj)
	logs := map[string]map[string]any{}
	deadline := time.Now().Add(3 * time.Minute)
	for len(logs) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("scheduled runs not finished within 3 minutes: %v\nstderr: %s", logs, clip(a.stderr.String()))
		}
		time.Sleep(time.Second)
		code, m := call(tokAlice, "GET", "/operation_logs", nil)
		if code != 200 {
			t.Fatalf("operation logs: %d %v", code, m)
		}
		for _, l := range m["operation_logs"].([]any) {
			l := l.(map[string]any)
			op, _ := l["scheduled_operation_id"].(string)
			if (op == opAlice || op == opBob) && l["status"] != "running" && logs[op] == nil {
				logs[op] = l
			}
		}
	}
	if l := logs[opAlice]; l["status"] != "success" {
		t.Fatalf("alice's scheduled run: %v, want success through her trust\nstderr: %s", l, clip(a.stderr.String()))
	}
	code, m = call(tokAlice, "GET", "/providers/"+karborProvider+"/checkpoints/"+logs[opAlice]["checkpoint_id"].(string), nil)
	if cp, _ := m["checkpoint"].(map[string]any); code != 200 || cp["status"] != "available" {
		t.Fatalf("alice's scheduled checkpoint: %d %v, want available", code, m)
	}
	if l := logs[opBob]; l["status"] != "error" || !strings.Contains(l["error_info"].(string), tb.ID) ||
		!strings.Contains(l["error_info"].(string), "create the scheduled operation again") {
		t.Fatalf("bob's scheduled run: %v, want an error naming trust %s and what to do", l, tb.ID)
	}

	// Deleting alice's operation deletes her trust; bob's goes too,
	// though Keystone no longer lets his trust be used to delete it.
	if code, m := call(tokAlice, "DELETE", "/scheduled_operations/"+opAlice, nil); code != http.StatusAccepted {
		t.Fatalf("delete alice's operation: %d %v", code, m)
	}
	if err := trusts.Get(ctx, ks.id, ta.ID).Err; !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("alice's trust %s after her operation was deleted: %v, want 404", ta.ID, err)
	}
	if code, m := call(tokAlice, "DELETE", "/scheduled_operations/"+opBob, nil); code != http.StatusAccepted {
		t.Fatalf("delete bob's operation: %d %v", code, m)
	}
}
