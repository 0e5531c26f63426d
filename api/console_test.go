package api

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn/dedup"
)

func TestLoginNoAuth(t *testing.T) {
	e := newEnv(t).asToken("")
	m := e.must(201, "POST", "/v1/auth/tokens", map[string]any{"auth": map[string]any{"username": "u", "password": "p", "project": "x"}})
	tok := m["token"].(map[string]any)
	if tok["id"] != "noauth" || tok["noauth"] != true || tok["admin"] != false {
		t.Fatalf("noauth login %v", tok)
	}
	if m := e.asToken("whatever").must(200, "GET", "/v1/auth/tokens", nil); m["token"].(map[string]any)["noauth"] != true {
		t.Fatalf("noauth whoami %v", m)
	}
	code, m := e.do("POST", "/v1/auth/tokens", `{"auth": {"user": "u"}}`)
	if code != 400 {
		t.Fatalf("unknown field: %d %v", code, m)
	}
}

// TestLoginKeystone: the daemon asks Keystone for the user's token and
// answers it with the identity; a wrong password is a 401 that neither
// the answer nor the log repeats.
func TestLoginKeystone(t *testing.T) {
	f := newFakeKeystone(t)
	later := time.Now().Add(time.Hour)
	f.add("tok-a", "alice", "projA", later, "member")
	f.add("tok-admin", "root", "admin", later, "admin")
	f.logins["alice"] = [2]string{"pw-alice", "tok-a"}
	var logs bytes.Buffer
	e := newEnvOpts(t, newTestKeystone(t, f, time.Now), slog.New(slog.NewJSONHandler(&logs, nil)), Options{}).asToken("")

	m := e.must(201, "POST", "/v1/auth/tokens", map[string]any{"auth": map[string]any{"username": "alice", "password": "pw-alice", "project": "projA", "domain": "Default"}})
	tok := m["token"].(map[string]any)
	if tok["id"] != "tok-a" || tok["project_id"] != "projA" || tok["user_id"] != "alice" || tok["admin"] != false || tok["noauth"] != false {
		t.Fatalf("login answer %v", tok)
	}
	code, m := e.do("POST", "/v1/auth/tokens", map[string]any{"auth": map[string]any{"username": "alice", "password": "wrong-pw-xyz", "project": "projA"}})
	if code != 401 {
		t.Fatalf("wrong password: %d %v", code, m)
	}
	if msg := fault(t, m, "unauthorized", 401); strings.Contains(msg, "wrong-pw-xyz") {
		t.Fatalf("the fault repeats the password: %s", msg)
	}
	code, m = e.do("POST", "/v1/auth/tokens", map[string]any{"auth": map[string]any{"username": "alice"}})
	if code != 400 {
		t.Fatalf("no password: %d %v", code, m)
	}
	if m := e.asToken("tok-admin").must(200, "GET", "/v1/auth/tokens", nil); m["token"].(map[string]any)["admin"] != true || m["token"].(map[string]any)["id"] != nil {
		t.Fatalf("admin whoami %v", m)
	}
	if code, _ := e.do("GET", "/v1/auth/tokens", nil); code != 401 {
		t.Fatalf("whoami without a token: %d", code)
	}
	for _, secret := range []string{"pw-alice", "wrong-pw-xyz", "tok-a", "tok-admin"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log holds %q:\n%s", secret, logs.String())
		}
	}
}

func resourceReq(name string, rs map[string]string) map[string]any {
	var l []map[string]any
	for id, n := range rs {
		l = append(l, map[string]any{"id": id, "type": "OS::Cairn::File", "name": n})
	}
	return map[string]any{"plan": map[string]any{"name": name, "provider_id": prov, "resources": l, "parameters": map[string]any{}}}
}

// TestResourcesSummaryAPI: the resource list with search and the summary
// keep to the project, and only an administrator's all_tenants crosses.
func TestResourcesSummaryAPI(t *testing.T) {
	f := newFakeKeystone(t)
	later := time.Now().Add(time.Hour)
	f.add("tok-a", "alice", "projA", later, "member")
	f.add("tok-b", "bob", "projB", later, "member")
	f.add("tok-admin", "root", "admin", later, "admin")
	e := newEnvAuth(t, newTestKeystone(t, f, time.Now))
	a, b := e.asToken("tok-a"), e.asToken("tok-b")
	idA, _ := e.volume("alpha.img", 8<<10)
	idB, _ := e.volume("beta.img", 8<<10)
	planA := a.must(200, "POST", "/v1/projA/plans", resourceReq("pa", map[string]string{idA: "alpha-disk"}))["plan"].(map[string]any)["id"].(string)
	b.must(200, "POST", "/v1/projB/plans", resourceReq("pb", map[string]string{idB: "beta-disk"}))
	cp := a.waitCheckpoint("projA", a.createCheckpoint("projA", planA))

	for st, want := range map[string]int{"available": 1, "protecting": 0} {
		if l := a.must(200, "GET", "/v1/projA/providers/"+prov+"/checkpoints?status="+st, nil)["checkpoints"].([]any); len(l) != want {
			t.Errorf("checkpoints?status=%s: %d, want %d", st, len(l), want)
		}
	}
	rs := a.must(200, "GET", "/v1/projA/resources", nil)["resources"].([]any)
	if len(rs) != 1 {
		t.Fatalf("projA resources %v", rs)
	}
	r := rs[0].(map[string]any)
	if r["id"] != idA || !strings.HasSuffix(r["name"].(string), "/alpha.img") || r["last_checkpoint_id"] != cp["id"] || r["last_status"] != "available" || r["stored_bytes"].(float64) <= 0 {
		t.Fatalf("projA resource %v", r)
	}
	if rs := a.must(200, "GET", "/v1/projA/resources?q=beta", nil)["resources"].([]any); len(rs) != 0 {
		t.Fatalf("projA finds projB's resource: %v", rs)
	}
	if code, _ := b.do("GET", "/v1/projA/resources", nil); code != 403 {
		t.Fatalf("bob lists projA's resources: %d", code)
	}
	if code, _ := b.do("GET", "/v1/projB/summary?all_tenants=1", nil); code != 403 {
		t.Fatalf("member all_tenants summary: %d", code)
	}
	if code, m := a.do("GET", "/v1/projA/resources?q="+strings.Repeat("x", 300), nil); code != 400 {
		t.Fatalf("long search: %d %v", code, m)
	}
	ad := e.asToken("tok-admin")
	found := ad.must(200, "GET", "/v1/admin/resources?all_tenants=1&q=.IMG", nil)["resources"].([]any)
	if len(found) != 2 {
		t.Fatalf("admin search over all projects: %v", found)
	}
	ps := ad.must(200, "GET", "/v1/admin/summary?all_tenants=1", nil)["projects"].([]any)
	if len(ps) != 2 || ps[0].(map[string]any)["project_id"] != "projA" || ps[1].(map[string]any)["project_id"] != "projB" {
		t.Fatalf("admin summary %v", ps)
	}
	if p := ps[0].(map[string]any); p["resources"] != 1.0 || p["checkpoints"] != 1.0 || p["last_success_at"] != cp["created_at"] {
		t.Fatalf("projA summary %v (checkpoint %v)", p, cp["created_at"])
	}
	own := b.must(200, "GET", "/v1/projB/summary", nil)["projects"].([]any)
	if len(own) != 1 || own[0].(map[string]any)["project_id"] != "projB" || own[0].(map[string]any)["checkpoints"] != 0.0 {
		t.Fatalf("projB summary %v", own)
	}
}

// dirFiles is a FileReader over a directory per backup: the API's file
// routes without root, FUSE or loop devices (e2e runs the real ones).
func dirFiles(t *testing.T) (FileReader, string) {
	dir := t.TempDir()
	return func(ctx context.Context, repo *dedup.Repository, backupID, file string, fn func(*os.Root) error) error {
		root, err := os.OpenRoot(filepath.Join(dir, backupID))
		if err != nil {
			return err
		}
		defer root.Close()
		return fn(root)
	}, dir
}

func TestCheckpointFiles(t *testing.T) {
	fr, dir := dirFiles(t)
	e := newEnvOpts(t, NoAuth{}, slog.New(slog.DiscardHandler), Options{Files: fr})
	id, _ := e.volume("fs.img", 8<<10)
	cp := e.waitCheckpoint("projA", e.createCheckpoint("projA", e.createPlan("projA", id)))
	var rb map[string]any
	for _, x := range cp["resources"].([]any) {
		rb = x.(map[string]any)
	}
	fsDir := filepath.Join(dir, rb["backup_id"].(string))
	if err := os.MkdirAll(filepath.Join(fsDir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := []byte("hostname=cairn\n")
	if err := os.WriteFile(filepath.Join(fsDir, "etc", "conf"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(fsDir, "etc", "out")); err != nil {
		t.Fatal(err)
	}
	base := "/v1/projA/providers/" + prov + "/checkpoints/" + cp["id"].(string) + "/files"
	q := "?resource=" + id

	m := e.must(200, "GET", base+q+"&path=/etc", nil)
	fl := m["files"].([]any)
	if len(fl) != 2 || fl[0].(map[string]any)["name"] != "conf" || fl[0].(map[string]any)["type"] != "file" ||
		fl[0].(map[string]any)["size"] != float64(len(want)) || fl[1].(map[string]any)["type"] != "symlink" {
		t.Fatalf("listing %v", m)
	}
	resp, err := http.Get(e.srv.URL + base + "/content" + q + "&path=/etc/../etc/conf")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, want) || resp.Header.Get("Content-Disposition") != `attachment; filename=conf` ||
		resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("download: %d %q %v", resp.StatusCode, got, resp.Header)
	}

	for _, c := range []struct {
		name, path string
		code       int
	}{
		{"no resource", base + "?path=/", 400},
		{"bad partition", base + q + "&partition=x1", 400},
		{"missing directory", base + q + "&path=/nope", 404},
		{"resource not in the checkpoint", base + "?resource=other", 404},
		{"directory download", base + "/content" + q + "&path=/etc", 400},
		{"symlink out of the file system", base + "/content" + q + "&path=/etc/out", 400},
		{"other project", "/v1/projB/providers/" + prov + "/checkpoints/" + cp["id"].(string) + "/files" + q, 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, m := e.with(t).do("GET", c.path, nil); code != c.code {
				t.Fatalf("%s: %d %v, want %d", c.path, code, m, c.code)
			}
		})
	}
	// Without a FileReader the routes say so.
	e2 := newEnv(t)
	id2, _ := e2.volume("fs.img", 8<<10)
	cp2 := e2.waitCheckpoint("p", e2.createCheckpoint("p", e2.createPlan("p", id2)))
	if code, m := e2.do("GET", "/v1/p/providers/"+prov+"/checkpoints/"+cp2["id"].(string)+"/files?resource="+id2, nil); code != 501 {
		t.Fatalf("without file browsing: %d %v", code, m)
	}
}

// fakeExports is an Exporter that records what runs.
type fakeExports struct {
	mu      sync.Mutex
	running map[string]bool // by URI
}

func (f *fakeExports) export(ctx context.Context, repo *dedup.Repository, backupID string) (string, func() error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	uri := "nbd://127.0.0.1:1/secret/" + backupID
	f.running[uri] = true
	return uri, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.running, uri)
		return nil
	}, nil
}

func (f *fakeExports) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.running) }

func TestExports(t *testing.T) {
	fe := &fakeExports{running: map[string]bool{}}
	e := newEnvOpts(t, NoAuth{}, slog.New(slog.DiscardHandler), Options{Exports: fe.export})
	id, _ := e.volume("nbd.img", 8<<10)
	cp := e.waitCheckpoint("projA", e.createCheckpoint("projA", e.createPlan("projA", id)))
	cps := "/v1/projA/providers/" + prov + "/checkpoints/" + cp["id"].(string)
	backup := cp["resources"].([]any)[0].(map[string]any)["backup_id"].(string)

	x := e.must(201, "POST", cps+"/exports", map[string]any{"export": map[string]any{"resource": id}})["export"].(map[string]any)
	if x["uri"] != "nbd://127.0.0.1:1/secret/"+backup || x["checkpoint_id"] != cp["id"] || fe.count() != 1 {
		t.Fatalf("export %v (running %d)", x, fe.count())
	}
	if l := e.must(200, "GET", "/v1/projA/exports", nil)["exports"].([]any); len(l) != 1 || l[0].(map[string]any)["id"] != x["id"] {
		t.Fatalf("projA exports %v", l)
	}
	if l := e.must(200, "GET", "/v1/projB/exports", nil)["exports"].([]any); len(l) != 0 {
		t.Fatalf("projB sees projA's exports: %v", l)
	}
	for _, c := range []struct {
		name, method, path string
		body               any
		code               int
	}{
		{"no body", "POST", cps + "/exports", `{}`, 400},
		{"unknown resource", "POST", cps + "/exports", map[string]any{"export": map[string]any{"resource": "nope"}}, 404},
		{"other project's checkpoint", "POST", "/v1/projB/providers/" + prov + "/checkpoints/" + cp["id"].(string) + "/exports", map[string]any{"export": map[string]any{"resource": id}}, 404},
		{"other project's export", "DELETE", "/v1/projB/exports/" + x["id"].(string), nil, 404},
		{"bad export id", "DELETE", "/v1/projA/exports/x", nil, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, m := e.with(t).do(c.method, c.path, c.body); code != c.code {
				t.Fatalf("%d %v, want %d", code, m, c.code)
			}
		})
	}
	e.must(202, "DELETE", "/v1/projA/exports/"+x["id"].(string), nil)
	if fe.count() != 0 {
		t.Fatal("the export still runs after DELETE")
	}
	// Deleting the checkpoint stops its exports first.
	e.must(201, "POST", cps+"/exports", map[string]any{"export": map[string]any{"resource": id}})
	e.must(202, "DELETE", cps, nil)
	if fe.count() != 0 {
		t.Fatal("the export still runs after its checkpoint was deleted")
	}
	// Without an Exporter the route says so.
	e2 := newEnv(t)
	if code, m := e2.do("POST", cps+"/exports", map[string]any{"export": map[string]any{"resource": id}}); code != 501 {
		t.Fatalf("without exports: %d %v", code, m)
	}
}
