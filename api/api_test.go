package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn/appliance"
	"cairn/plugins/file"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const prov = appliance.ProviderID

type env struct {
	t   *testing.T
	a   *appliance.Appliance
	cfg appliance.Config
	srv *httptest.Server
	// token goes in X-Auth-Token ("anything" unless asToken changed it).
	token string
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvAuth(t, NoAuth{}) }

func newEnvAuth(t *testing.T, auth Authenticator) *env {
	t.Helper()
	return newEnvOpts(t, auth, slog.New(slog.DiscardHandler), Options{})
}

func newEnvOpts(t *testing.T, auth Authenticator, log *slog.Logger, o Options) *env {
	t.Helper()
	cfg := appliance.Config{DataDir: t.TempDir(), PruneInterval: appliance.Duration(-1), Tick: appliance.Duration(time.Hour)}
	a, err := appliance.Open(context.Background(), cfg, appliance.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	srv := httptest.NewServer(NewWithOptions(a, auth, log, o))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		_ = a.Close()
	})
	return &env{t: t, a: a, cfg: a.Config(), srv: srv, token: "anything"}
}

// with returns e reporting to t (for subtests).
func (e *env) with(t *testing.T) *env { c := *e; c.t = t; return &c }

// asToken returns e sending token.
func (e *env) asToken(token string) *env { c := *e; c.token = token; return &c }

// do sends a request with a JSON (or raw string) body and decodes the
// JSON answer.
func (e *env) do(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if e.token != "" {
		req.Header.Set("X-Auth-Token", e.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			e.t.Fatalf("%s %s: status %d, body not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m
}

// must checks the status and returns the body.
func (e *env) must(want int, method, path string, body any) map[string]any {
	e.t.Helper()
	code, m := e.do(method, path, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, m)
	}
	return m
}

// fault checks an OpenStack fault body of the given name and code and
// returns its message.
func fault(t *testing.T, m map[string]any, name string, code int) string {
	t.Helper()
	f, ok := m[name].(map[string]any)
	if !ok {
		t.Fatalf("no %q fault in %v", name, m)
	}
	if f["code"] != float64(code) {
		t.Fatalf("fault code %v, want %d", f["code"], code)
	}
	msg, _ := f["message"].(string)
	if msg == "" {
		t.Fatalf("fault without message: %v", m)
	}
	return msg
}

func (e *env) volume(name string, n int) (string, []byte) {
	e.t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	p := filepath.Join(e.cfg.FileRoots[0], name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return file.InstanceID(p), b
}

func planReq(name string, ids ...string) map[string]any {
	var rs []map[string]any
	for _, id := range ids {
		rs = append(rs, map[string]any{"id": id, "type": file.Type, "name": "x"})
	}
	return map[string]any{"plan": map[string]any{"name": name, "provider_id": prov, "resources": rs, "parameters": map[string]any{}}}
}

func (e *env) createPlan(project string, ids ...string) string {
	e.t.Helper()
	m := e.must(200, "POST", "/v1/"+project+"/plans", planReq("plan", ids...))
	return m["plan"].(map[string]any)["id"].(string)
}

func (e *env) createCheckpoint(project, planID string) string {
	e.t.Helper()
	m := e.must(202, "POST", "/v1/"+project+"/providers/"+prov+"/checkpoints",
		map[string]any{"checkpoint": map[string]any{"plan_id": planID, "extra-info": map[string]any{"note": "n"}}})
	return m["checkpoint"].(map[string]any)["id"].(string)
}

func (e *env) waitCheckpoint(project, id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := e.must(200, "GET", "/v1/"+project+"/providers/"+prov+"/checkpoints/"+id, nil)["checkpoint"].(map[string]any)
		if c["status"] != appliance.CheckpointProtecting {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("checkpoint %s still protecting", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) waitRun(path, key string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := e.must(200, "GET", path, nil)[key].(map[string]any)
		if r["status"] != appliance.RestoreInProgress {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s still in progress", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	if m := e.must(200, "GET", "/healthz", nil); m["status"] != "ok" {
		t.Fatal(m)
	}
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"# TYPE cairn_jobs_total counter", "cairn_jobs_running 0", "cairn_stored_bytes_total"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("metrics lack %q:\n%s", want, b)
		}
	}
	// Every metric the appliance had before client_golang keeps its name
	// and type, and the standard process and Go runtime metrics come
	// with them; the text must parse as the exposition format.
	id, _ := e.volume("m.img", 4<<10)
	e.waitCheckpoint("p", e.createCheckpoint("p", e.createPlan("p", id)))
	mfs := scrapeIdle(t, e.srv.URL+"/metrics")
	for name, typ := range map[string]dto.MetricType{
		"cairn_jobs_running": dto.MetricType_GAUGE, "cairn_jobs_queued": dto.MetricType_GAUGE,
		"cairn_jobs_interrupted_total": dto.MetricType_COUNTER, "cairn_state_errors_total": dto.MetricType_COUNTER,
		"cairn_protected_bytes_total": dto.MetricType_COUNTER, "cairn_stored_bytes_total": dto.MetricType_COUNTER,
		"cairn_restored_bytes_total": dto.MetricType_COUNTER, "cairn_state_writes_total": dto.MetricType_COUNTER,
		"process_cpu_seconds_total": dto.MetricType_COUNTER, "process_resident_memory_bytes": dto.MetricType_GAUGE,
		"go_goroutines": dto.MetricType_GAUGE, "go_memstats_alloc_bytes": dto.MetricType_GAUGE,
		"cairn_jobs_total": dto.MetricType_COUNTER, "cairn_job_duration_seconds": dto.MetricType_SUMMARY,
		"cairn_checkpoints": dto.MetricType_GAUGE, "cairn_cloud_request_seconds_total": dto.MetricType_COUNTER,
		"cairn_cloud_sleep_seconds_total": dto.MetricType_COUNTER,
	} {
		mf := mfs[name]
		if mf == nil || mf.GetType() != typ {
			t.Errorf("metric %s: %v, want type %v", name, mf, typ)
		}
	}
	if got := jobCount(mfs, "protect", "success"); got != 1 {
		t.Errorf("cairn_jobs_total{kind=protect,status=success} after one protection: %v", got)
	}
	if mf := mfs["cairn_checkpoints"]; mf == nil || len(mf.Metric) != 1 || mf.Metric[0].GetGauge().GetValue() != 1 ||
		mf.Metric[0].GetLabel()[0].GetValue() != appliance.CheckpointAvailable {
		t.Errorf("cairn_checkpoints after one protection: %v", mf)
	}
	m := e.must(404, "GET", "/v2/x", nil)
	fault(t, m, "itemNotFound", 404)
}

func TestProvidersAndProtectables(t *testing.T) {
	e := newEnv(t)
	id, _ := e.volume("disk.img", 8<<10)
	ps := e.must(200, "GET", "/v1/p/providers", nil)["providers"].([]any)
	if len(ps) != 1 {
		t.Fatalf("providers %v", ps)
	}
	p := ps[0].(map[string]any)
	if p["id"] != prov || p["name"] != "cairn" {
		t.Fatal(p)
	}
	schema := p["extended_info_schema"].(map[string]any)
	for _, k := range []string{"options_schema", "restore_schema", "saving_info_schema"} {
		if _, ok := schema[k].(map[string]any)[file.Type]; !ok {
			t.Fatalf("%s lacks %s: %v", k, file.Type, schema)
		}
	}
	e.must(200, "GET", "/v1/p/providers/"+prov, nil)
	fault(t, e.must(404, "GET", "/v1/p/providers/"+appliance.NewUUID(), nil), "itemNotFound", 404)

	types := e.must(200, "GET", "/v1/p/protectables", nil)["protectable_type"].([]any)
	if len(types) != 1 || types[0] != file.Type {
		t.Fatal(types)
	}
	pt := e.must(200, "GET", "/v1/p/protectables/"+file.Type, nil)["protectable_type"].(map[string]any)
	if pt["name"] != file.Type || len(pt["dependent_types"].([]any)) != 0 {
		t.Fatal(pt)
	}
	e.must(404, "GET", "/v1/p/protectables/OS::Nope", nil)
	insts := e.must(200, "GET", "/v1/p/protectables/"+file.Type+"/instances", nil)["instances"].([]any)
	if len(insts) != 1 || insts[0].(map[string]any)["id"] != id {
		t.Fatal(insts)
	}
	inst := e.must(200, "GET", "/v1/p/protectables/"+file.Type+"/instances/"+id, nil)["instance"].(map[string]any)
	if inst["type"] != file.Type || inst["dependent_resources"] == nil {
		t.Fatal(inst)
	}
	e.must(404, "GET", "/v1/p/protectables/"+file.Type+"/instances/"+appliance.NewUUID(), nil)
	e.must(404, "GET", "/v1/p/protectables/OS::Nope/instances", nil)
}

func TestPlanCRUD(t *testing.T) {
	e := newEnv(t)
	id1, _ := e.volume("a.img", 4<<10)
	id2, _ := e.volume("b.img", 4<<10)
	m := e.must(200, "POST", "/v1/p/plans", planReq("first", id1))["plan"].(map[string]any)
	pid := m["id"].(string)
	if m["status"] != "suspended" || m["provider_id"] != prov || m["name"] != "first" || m["project_id"] != "p" {
		t.Fatal(m)
	}
	if rs := m["resources"].([]any); len(rs) != 1 || rs[0].(map[string]any)["id"] != id1 {
		t.Fatal(rs)
	}
	m = e.must(200, "PUT", "/v1/p/plans/"+pid, map[string]any{"plan": map[string]any{"name": "renamed", "status": "started",
		"resources": []any{map[string]any{"id": id2, "type": file.Type}}}})["plan"].(map[string]any)
	if m["name"] != "renamed" || m["status"] != "started" || m["resources"].([]any)[0].(map[string]any)["id"] != id2 {
		t.Fatal(m)
	}
	fault(t, e.must(400, "PUT", "/v1/p/plans/"+pid, map[string]any{"plan": map[string]any{"status": "running"}}), "badRequest", 400)
	fault(t, e.must(400, "PUT", "/v1/p/plans/"+pid, map[string]any{"plan": map[string]any{"name": ""}}), "badRequest", 400)
	got := e.must(200, "GET", "/v1/p/plans/"+pid, nil)["plan"].(map[string]any)
	if got["name"] != "renamed" {
		t.Fatal(got)
	}
	e.createPlan("p", id1)
	if l := e.must(200, "GET", "/v1/p/plans", nil)["plans"].([]any); len(l) != 2 {
		t.Fatal(l)
	}
	if l := e.must(200, "GET", "/v1/p/plans?name=renamed", nil)["plans"].([]any); len(l) != 1 {
		t.Fatal(l)
	}
	e.must(202, "DELETE", "/v1/p/plans/"+pid, nil)
	e.must(404, "GET", "/v1/p/plans/"+pid, nil)
	e.must(404, "DELETE", "/v1/p/plans/"+pid, nil)

	// Rules: a resource that does not exist, a duplicate, none at all, an
	// unknown provider.
	fault(t, e.must(400, "POST", "/v1/p/plans", planReq("x", appliance.NewUUID())), "badRequest", 400)
	fault(t, e.must(400, "POST", "/v1/p/plans", planReq("x", id1, id1)), "badRequest", 400)
	fault(t, e.must(400, "POST", "/v1/p/plans", planReq("x")), "badRequest", 400)
	fault(t, e.must(400, "POST", "/v1/p/plans", planReq("", id1)), "badRequest", 400)
	bad := planReq("x", id1)
	bad["plan"].(map[string]any)["provider_id"] = appliance.NewUUID()
	fault(t, e.must(404, "POST", "/v1/p/plans", bad), "itemNotFound", 404)
}

func TestPlanQuota(t *testing.T) {
	e := newEnv(t)
	id, _ := e.volume("a.img", 4<<10)
	q := e.must(200, "GET", "/v1/p/quotas/p", nil)["quota"].(map[string]any)
	if q["plans"] != float64(50) || q["id"] != "p" {
		t.Fatal(q)
	}
	e.must(200, "GET", "/v1/p/quotas/p/defaults", nil)
	e.must(200, "GET", "/v1/p/quotas/p/detail", nil)
	q = e.must(200, "PUT", "/v1/p/quotas/p", map[string]any{"quota": map[string]any{"plans": 1}})["quota"].(map[string]any)
	if q["plans"] != float64(1) {
		t.Fatal(q)
	}
	e.createPlan("p", id)
	fault(t, e.must(413, "POST", "/v1/p/plans", planReq("two", id)), "overLimit", 413)
	fault(t, e.must(400, "PUT", "/v1/p/quotas/p", map[string]any{"quota": map[string]any{"plans": -1}}), "badRequest", 400)
	fault(t, e.must(400, "PUT", "/v1/p/quotas/p", map[string]any{"quota": map[string]any{}}), "badRequest", 400)
}

func TestCheckpointsRestoresVerifications(t *testing.T) {
	e := newEnv(t)
	id, data := e.volume("a.img", 200<<10)
	plan := e.createPlan("p", id)
	cid := e.createCheckpoint("p", plan)
	c := e.waitCheckpoint("p", cid)
	if c["status"] != "available" || c["progress"] != float64(100) || c["project_id"] != "p" {
		t.Fatal(c)
	}
	if c["protection_plan"].(map[string]any)["id"] != plan {
		t.Fatal(c["protection_plan"])
	}
	extra := c["extra_info"].(map[string]any)
	if extra["size_bytes"] != float64(200<<10) || extra["note"] != "n" {
		t.Fatalf("extra_info %v", extra)
	}
	var graph []map[string]any
	if err := json.Unmarshal([]byte(c["resource_graph"].(string)), &graph); err != nil || len(graph) != 1 {
		t.Fatalf("resource_graph %v (%v)", c["resource_graph"], err)
	}
	if graph[0]["status"] != "available" || graph[0]["size"] != float64(200<<10) {
		t.Fatal(graph)
	}

	target := filepath.Join(e.cfg.RestoreDir, "restored.img")
	r := e.must(202, "POST", "/v1/p/restores", map[string]any{"restore": map[string]any{"provider_id": prov, "checkpoint_id": cid,
		"restore_target": target, "parameters": map[string]any{}}})["restore"].(map[string]any)
	if r["status"] != "in_progress" {
		t.Fatal(r)
	}
	r = e.waitRun("/v1/p/restores/"+r["id"].(string), "restore")
	if r["status"] != "success" || r["resources_status"].(map[string]any)[file.Type+"#"+id] != "success" {
		t.Fatal(r)
	}
	if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore differs: %v", err)
	}
	if l := e.must(200, "GET", "/v1/p/restores", nil)["restores"].([]any); len(l) != 1 {
		t.Fatal(l)
	}
	// A bad target (existing, through a symlink, outside the folders) is
	// refused with the request, before a job is queued.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(e.cfg.RestoreDir, "escape")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{target, filepath.Join(e.cfg.RestoreDir, "escape", "x.img"), filepath.Join(outside, "x.img")} {
		msg := fault(t, e.must(400, "POST", "/v1/p/restores", map[string]any{"restore": map[string]any{"provider_id": prov, "checkpoint_id": cid,
			"restore_target": bad}}), "badRequest", 400)
		if !strings.Contains(msg, bad) {
			t.Errorf("400 for %s does not name it: %s", bad, msg)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the restore directory: %v", ents)
	}
	if l := e.must(200, "GET", "/v1/p/restores", nil)["restores"].([]any); len(l) != 1 {
		t.Fatalf("refused restores were recorded: %v", l)
	}

	v := e.must(202, "POST", "/v1/p/verifications", map[string]any{"verification": map[string]any{"provider_id": prov, "checkpoint_id": cid}})["verification"].(map[string]any)
	v = e.waitRun("/v1/p/verifications/"+v["id"].(string), "verification")
	if v["status"] != "success" {
		t.Fatal(v)
	}
	if l := e.must(200, "GET", "/v1/p/verifications", nil)["verifications"].([]any); len(l) != 1 {
		t.Fatal(l)
	}

	logs := e.must(200, "GET", "/v1/p/operation_logs", nil)["operation_logs"].([]any)
	types := map[string]int{}
	for _, l := range logs {
		types[l.(map[string]any)["operation_type"].(string)]++
	}
	if types["protect"] != 1 || types["restore"] != 1 || types["verify"] != 1 {
		t.Fatalf("operation logs %v", types)
	}
	lid := logs[0].(map[string]any)["id"].(string)
	e.must(200, "GET", "/v1/p/operation_logs/"+lid, nil)
	e.must(404, "GET", "/v1/p/operation_logs/"+appliance.NewUUID(), nil)
	if l := e.must(200, "GET", "/v1/p/operation_logs?operation_type=verify", nil)["operation_logs"].([]any); len(l) != 1 {
		t.Fatal(l)
	}

	e.must(202, "DELETE", "/v1/p/providers/"+prov+"/checkpoints/"+cid, nil)
	e.must(404, "GET", "/v1/p/providers/"+prov+"/checkpoints/"+cid, nil)
	e.must(404, "DELETE", "/v1/p/providers/"+prov+"/checkpoints/"+cid, nil)
	fault(t, e.must(404, "POST", "/v1/p/restores", map[string]any{"restore": map[string]any{"provider_id": prov, "checkpoint_id": cid}}), "itemNotFound", 404)
	// A checkpoint of an unknown plan, or under an unknown provider.
	e.must(404, "POST", "/v1/p/providers/"+prov+"/checkpoints", map[string]any{"checkpoint": map[string]any{"plan_id": appliance.NewUUID()}})
	e.must(404, "POST", "/v1/p/providers/"+appliance.NewUUID()+"/checkpoints", map[string]any{"checkpoint": map[string]any{"plan_id": plan}})
	e.must(404, "GET", "/v1/p/providers/"+appliance.NewUUID()+"/checkpoints", nil)
}

func TestCheckpointListPaging(t *testing.T) {
	e := newEnv(t)
	id, _ := e.volume("a.img", 4<<10)
	planA := e.createPlan("p", id)
	planB := e.createPlan("p", id)
	var ids []string // creation order
	for i := range 5 {
		plan := planA
		if i%2 == 1 {
			plan = planB
		}
		cid := e.createCheckpoint("p", plan)
		e.waitCheckpoint("p", cid)
		ids = append(ids, cid)
	}
	base := "/v1/p/providers/" + prov + "/checkpoints"
	list := func(q string) []string {
		t.Helper()
		var out []string
		for _, c := range e.must(200, "GET", base+q, nil)["checkpoints"].([]any) {
			out = append(out, c.(map[string]any)["id"].(string))
		}
		return out
	}
	rev := func(s []string) []string {
		out := make([]string, len(s))
		for i := range s {
			out[i] = s[len(s)-1-i]
		}
		return out
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", rev(ids)}, // newest first
		{"?sort=created_at:asc", ids},
		{"?sort_key=created_at&sort_dir=asc", ids},
		{"?limit=2", rev(ids)[:2]},
		{"?limit=0", nil},
		{"?limit=2&marker=" + rev(ids)[1], rev(ids)[2:4]},
		{"?sort=created_at:asc&marker=" + ids[3], ids[4:]},
		{"?plan_id=" + planB, []string{ids[3], ids[1]}},
		{"?plan_id=" + planA + "&sort=created_at:asc", []string{ids[0], ids[2], ids[4]}},
		{"?status=available&limit=1", rev(ids)[:1]},
		{"?status=error", nil},
		{"?start_date=2000-01-01&end_date=2999-01-01&limit=1", rev(ids)[:1]},
		{"?end_date=2000-01-01", nil},
	} {
		t.Run(tc.q, func(t *testing.T) {
			got := list(tc.q)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	for _, q := range []string{"?limit=-1", "?limit=x", "?marker=" + appliance.NewUUID(), "?sort=created_at:up", "?sort_key=id&sort_dir=sideways"} {
		t.Run("bad"+q, func(t *testing.T) {
			fault(t, e.with(t).must(400, "GET", base+q, nil), "badRequest", 400)
		})
	}
}

func triggerReq(name, pattern string) map[string]any {
	return map[string]any{"trigger_info": map[string]any{"name": name, "type": "time",
		"properties": map[string]any{"pattern": pattern, "format": "crontab", "window": 60}}}
}

func TestTriggersAndScheduledOperations(t *testing.T) {
	e := newEnv(t)
	id, _ := e.volume("a.img", 4<<10)
	plan := e.createPlan("p", id)
	tr := e.must(200, "POST", "/v1/p/triggers", triggerReq("hourly", "0 * * * *"))["trigger_info"].(map[string]any)
	tid := tr["id"].(string)
	if tr["type"] != "time" || tr["properties"].(map[string]any)["window"] != "60" {
		t.Fatal(tr)
	}
	tr = e.must(200, "PUT", "/v1/p/triggers/"+tid, map[string]any{"trigger_info": map[string]any{"name": "renamed",
		"properties": map[string]any{"pattern": "30 * * * *"}}})["trigger_info"].(map[string]any)
	if tr["name"] != "renamed" || tr["properties"].(map[string]any)["pattern"] != "30 * * * *" {
		t.Fatal(tr)
	}
	e.must(200, "GET", "/v1/p/triggers/"+tid, nil)
	if l := e.must(200, "GET", "/v1/p/triggers", nil)["triggers"].([]any); len(l) != 1 {
		t.Fatal(l)
	}
	op := e.must(200, "POST", "/v1/p/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
		"name": "op", "description": "d", "operation_type": "protect", "trigger_id": tid,
		"operation_definition": map[string]any{"plan_id": plan, "provider_id": prov, "max_backups": "3"}}})["scheduled_operation"].(map[string]any)
	oid := op["id"].(string)
	if op["enabled"] != true || op["trigger_id"] != tid || op["operation_definition"].(map[string]any)["max_backups"] != "3" {
		t.Fatal(op)
	}
	e.must(200, "GET", "/v1/p/scheduled_operations/"+oid, nil)
	if l := e.must(200, "GET", "/v1/p/scheduled_operations", nil)["operations"].([]any); len(l) != 1 {
		t.Fatal(l)
	}
	// In use: the trigger and the plan cannot go.
	fault(t, e.must(409, "DELETE", "/v1/p/triggers/"+tid, nil), "conflictingRequest", 409)
	fault(t, e.must(409, "DELETE", "/v1/p/plans/"+plan, nil), "conflictingRequest", 409)
	e.must(202, "DELETE", "/v1/p/scheduled_operations/"+oid, nil)
	e.must(404, "GET", "/v1/p/scheduled_operations/"+oid, nil)
	e.must(202, "DELETE", "/v1/p/triggers/"+tid, nil)
	e.must(404, "GET", "/v1/p/triggers/"+tid, nil)

	tid = e.must(200, "POST", "/v1/p/triggers", triggerReq("t", "0 0 * * *"))["trigger_info"].(map[string]any)["id"].(string)
	for name, def := range map[string]map[string]any{
		"unknown key":    {"plan_id": plan, "provider_id": prov, "keep_forever": "1"},
		"bad number":     {"plan_id": plan, "provider_id": prov, "max_backups": "many"},
		"negative":       {"plan_id": plan, "provider_id": prov, "keep_daily": "-1"},
		"unknown plan":   {"plan_id": appliance.NewUUID(), "provider_id": prov},
		"unknown provid": {"plan_id": plan, "provider_id": appliance.NewUUID()},
	} {
		t.Run(name, func(t *testing.T) {
			code, m := e.with(t).do("POST", "/v1/p/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
				"name": "op", "operation_type": "protect", "trigger_id": tid, "operation_definition": def}})
			if code != 400 && code != 404 {
				t.Fatalf("status %d: %v", code, m)
			}
		})
	}
	fault(t, e.must(400, "POST", "/v1/p/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
		"name": "op", "operation_type": "delete_everything", "trigger_id": tid,
		"operation_definition": map[string]any{"plan_id": plan, "provider_id": prov}}}), "badRequest", 400)
	fault(t, e.must(404, "POST", "/v1/p/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
		"name": "op", "operation_type": "protect", "trigger_id": appliance.NewUUID(),
		"operation_definition": map[string]any{"plan_id": plan, "provider_id": prov}}}), "itemNotFound", 404)
}

// TestTenantIsolation creates one object of every type in project "alice"
// and checks that project "bob" sees none of them and can touch none
// (404), while alice still can.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	id, _ := e.volume("a.img", 4<<10)
	plan := e.createPlan("alice", id)
	cid := e.createCheckpoint("alice", plan)
	e.waitCheckpoint("alice", cid)
	rid := e.must(202, "POST", "/v1/alice/restores", map[string]any{"restore": map[string]any{"provider_id": prov, "checkpoint_id": cid,
		"restore_target": filepath.Join(e.cfg.RestoreDir, "r.img")}})["restore"].(map[string]any)["id"].(string)
	e.waitRun("/v1/alice/restores/"+rid, "restore")
	vid := e.must(202, "POST", "/v1/alice/verifications", map[string]any{"verification": map[string]any{"provider_id": prov, "checkpoint_id": cid}})["verification"].(map[string]any)["id"].(string)
	e.waitRun("/v1/alice/verifications/"+vid, "verification")
	tid := e.must(200, "POST", "/v1/alice/triggers", triggerReq("t", "0 * * * *"))["trigger_info"].(map[string]any)["id"].(string)
	oid := e.must(200, "POST", "/v1/alice/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
		"name": "op", "operation_type": "protect", "trigger_id": tid,
		"operation_definition": map[string]any{"plan_id": plan, "provider_id": prov}}})["scheduled_operation"].(map[string]any)["id"].(string)
	e.must(200, "PUT", "/v1/alice/quotas/alice", map[string]any{"quota": map[string]any{"plans": 7}})
	lid := e.must(200, "GET", "/v1/alice/operation_logs", nil)["operation_logs"].([]any)[0].(map[string]any)["id"].(string)

	// bob's lists are empty.
	for path, key := range map[string]string{
		"/v1/bob/plans": "plans", "/v1/bob/providers/" + prov + "/checkpoints": "checkpoints", "/v1/bob/restores": "restores",
		"/v1/bob/verifications": "verifications", "/v1/bob/triggers": "triggers", "/v1/bob/scheduled_operations": "operations",
		"/v1/bob/operation_logs": "operation_logs",
	} {
		if l := e.must(200, "GET", path, nil)[key].([]any); len(l) != 0 {
			t.Errorf("%s: bob sees %d of alice's objects", path, len(l))
		}
	}
	// Every show, update, delete and use by bob is a 404.
	bobPlan := planReq("bob", id)["plan"]
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/bob/plans/" + plan, nil},
		{"PUT", "/v1/bob/plans/" + plan, map[string]any{"plan": map[string]any{"name": "mine"}}},
		{"DELETE", "/v1/bob/plans/" + plan, nil},
		{"POST", "/v1/bob/providers/" + prov + "/checkpoints", map[string]any{"checkpoint": map[string]any{"plan_id": plan}}},
		{"GET", "/v1/bob/providers/" + prov + "/checkpoints/" + cid, nil},
		{"DELETE", "/v1/bob/providers/" + prov + "/checkpoints/" + cid, nil},
		{"POST", "/v1/bob/restores", map[string]any{"restore": map[string]any{"provider_id": prov, "checkpoint_id": cid}}},
		{"GET", "/v1/bob/restores/" + rid, nil},
		{"POST", "/v1/bob/verifications", map[string]any{"verification": map[string]any{"provider_id": prov, "checkpoint_id": cid}}},
		{"GET", "/v1/bob/verifications/" + vid, nil},
		{"GET", "/v1/bob/triggers/" + tid, nil},
		{"PUT", "/v1/bob/triggers/" + tid, map[string]any{"trigger_info": map[string]any{"name": "mine"}}},
		{"DELETE", "/v1/bob/triggers/" + tid, nil},
		{"POST", "/v1/bob/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{"name": "x", "operation_type": "protect",
			"trigger_id": tid, "operation_definition": map[string]any{"plan_id": plan, "provider_id": prov}}}},
		{"GET", "/v1/bob/scheduled_operations/" + oid, nil},
		{"DELETE", "/v1/bob/scheduled_operations/" + oid, nil},
		{"GET", "/v1/bob/operation_logs/" + lid, nil},
		{"GET", "/v1/bob/quotas/alice", nil},
		{"GET", "/v1/bob/quotas/alice/detail", nil},
		{"PUT", "/v1/bob/quotas/alice", map[string]any{"quota": map[string]any{"plans": 1000}}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			fault(t, e.with(t).must(404, tc.method, tc.path, tc.body), "itemNotFound", 404)
		})
	}
	// bob's own trigger cannot schedule alice's plan.
	btid := e.must(200, "POST", "/v1/bob/triggers", triggerReq("t", "0 * * * *"))["trigger_info"].(map[string]any)["id"].(string)
	e.must(404, "POST", "/v1/bob/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{"name": "x", "operation_type": "protect",
		"trigger_id": btid, "operation_definition": map[string]any{"plan_id": plan, "provider_id": prov}}})
	// bob's quota is his own.
	if q := e.must(200, "GET", "/v1/bob/quotas/bob", nil)["quota"].(map[string]any); q["plans"] != float64(50) {
		t.Fatal(q)
	}
	e.must(200, "POST", "/v1/bob/plans", map[string]any{"plan": bobPlan})

	// alice's objects are intact.
	if p := e.must(200, "GET", "/v1/alice/plans/"+plan, nil)["plan"].(map[string]any); p["name"] != "plan" {
		t.Fatal(p)
	}
	e.must(200, "GET", "/v1/alice/providers/"+prov+"/checkpoints/"+cid, nil)
	e.must(200, "GET", "/v1/alice/triggers/"+tid, nil)
	e.must(200, "GET", "/v1/alice/scheduled_operations/"+oid, nil)
	if q := e.must(200, "GET", "/v1/alice/quotas/alice", nil)["quota"].(map[string]any); q["plans"] != float64(7) {
		t.Fatal(q)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	id, _ := e.volume("a.img", 4<<10)
	plan := e.createPlan("p", id)
	cps := "/v1/p/providers/" + prov + "/checkpoints"
	big := `{"plan":{"name":"` + strings.Repeat("x", 1<<20) + `"}}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed json", "POST", "/v1/p/plans", `{"plan":`, 400, "malformed"},
		{"not an object", "POST", "/v1/p/plans", `[1,2]`, 400, "malformed"},
		{"empty body", "POST", "/v1/p/plans", ``, 400, "malformed"},
		{"trailing data", "POST", "/v1/p/plans", `{"plan":{}} {}`, 400, "trailing"},
		{"missing envelope", "POST", "/v1/p/plans", `{}`, 400, `missing the "plan"`},
		{"null envelope", "POST", "/v1/p/plans", `{"plan":null}`, 400, `missing the "plan"`},
		{"unknown top field", "POST", "/v1/p/plans", `{"plan":{},"x":1}`, 400, "unknown field"},
		{"unknown plan field", "POST", "/v1/p/plans", `{"plan":{"name":"a","colour":"red"}}`, 400, "unknown field"},
		{"wrong type", "POST", "/v1/p/plans", `{"plan":{"name":5}}`, 400, "malformed"},
		{"bad provider uuid", "POST", "/v1/p/plans", `{"plan":{"name":"a","provider_id":"nope"}}`, 400, "invalid UUID"},
		{"oversized", "POST", "/v1/p/plans", big, 413, "larger than 1 MiB"},
		{"bad plan id in path", "GET", "/v1/p/plans/not-a-uuid", ``, 400, "invalid UUID"},
		{"bad project", "GET", "/v1/p!q/plans", ``, 400, "invalid UUID"},
		{"bad checkpoint id", "GET", cps + "/xyz", ``, 400, "invalid UUID"},
		{"bad provider in path", "GET", "/v1/p/providers/xyz/checkpoints", ``, 400, "invalid UUID"},
		{"checkpoint bad plan uuid", "POST", cps, `{"checkpoint":{"plan_id":"p1"}}`, 400, "invalid UUID"},
		{"checkpoint unknown field", "POST", cps, `{"checkpoint":{"plan_id":"` + plan + `","when":"now"}}`, 400, "unknown field"},
		{"restore bad checkpoint uuid", "POST", "/v1/p/restores", `{"restore":{"provider_id":"` + prov + `","checkpoint_id":"c"}}`, 400, "invalid UUID"},
		{"restore unknown field", "POST", "/v1/p/restores", `{"restore":{"provider_id":"` + prov + `","checkpoint_id":"` + plan + `","force":true}}`, 400, "unknown field"},
		{"verification bad uuid", "POST", "/v1/p/verifications", `{"verification":{"provider_id":"x","checkpoint_id":"y"}}`, 400, "invalid UUID"},
		{"trigger nested property", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":{"a":1}}}}`, 400, "string or number"},
		{"trigger unknown property", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"0 * * * *","colour":"red"}}}`, 400, "unknown trigger property"},
		{"trigger bad type", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"event","properties":{"pattern":"0 * * * *"}}}`, 400, "only \"time\""},
		{"trigger no name", "POST", "/v1/p/triggers", `{"trigger_info":{"type":"time","properties":{"pattern":"0 * * * *"}}}`, 400, "name is required"},
		{"trigger no pattern", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{}}}`, 400, "pattern is required"},
		{"trigger bad window", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"0 * * * *","window":"-5"}}}`, 400, "window"},
		{"trigger bad start", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"0 * * * *","start_time":"tomorrow"}}}`, 400, "start_time"},
		{"trigger bad format", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"0 * * * *","format":"quartz"}}}`, 400, "format"},
		{"every minute is allowed", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"* * * * *","window":10}}}`, 200, ""},
		{"calendar too often", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"RRULE:FREQ=SECONDLY;INTERVAL=10","format":"calendar"}}}`, 400, "more often than the minimum interval"},
		{"calendar bad rule", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"RRULE:FREQ=FORTNIGHTLY","format":"calendar"}}}`, 400, "unsupported"},
		{"calendar interval overflows", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"RRULE:FREQ=WEEKLY;INTERVAL=99999999999","format":"calendar"}}}`, 400, "INTERVAL"},
		{"calendar interval past int64", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"RRULE:FREQ=DAILY;INTERVAL=9223372036854775807","format":"calendar"}}}`, 400, "INTERVAL"},
		{"window overflows", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"0 * * * *","window":"9300000000"}}}`, 400, "window"},
		{"end before start", "POST", "/v1/p/triggers", `{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"0 * * * *","start_time":"2030-01-02 00:00:00","end_time":"2030-01-01 00:00:00"}}}`, 400, "end_time"},
		{"op bad trigger uuid", "POST", "/v1/p/scheduled_operations", `{"scheduled_operation":{"name":"o","operation_type":"protect","trigger_id":"t"}}`, 400, "invalid UUID"},
		{"op numeric definition", "POST", "/v1/p/scheduled_operations", `{"scheduled_operation":{"operation_definition":{"max_backups":3}}}`, 400, "malformed"},
		{"quota unknown field", "PUT", "/v1/p/quotas/p", `{"quota":{"plans":1,"volumes":2}}`, 400, "unknown field"},
		{"quota not int", "PUT", "/v1/p/quotas/p", `{"quota":{"plans":1.5}}`, 400, "malformed"},
		{"no route", "GET", "/v1/p/widgets", ``, 404, "no such resource"},
		{"unrouted method", "PATCH", "/v1/p/plans", ``, 404, "no such resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := e.with(t).do(tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, m)
			}
			if tc.msg == "" {
				return
			}
			var f map[string]any
			for _, v := range m {
				f, _ = v.(map[string]any)
			}
			if msg, _ := f["message"].(string); !strings.Contains(msg, tc.msg) || f["code"] != float64(code) {
				t.Fatalf("fault %v lacks %q", m, tc.msg)
			}
		})
	}
}

// TestInvalidCronPatterns: every invalid crontab pattern in a trigger is a
// 400 that says what is wrong.
func TestInvalidCronPatterns(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ pat, msg string }{
		{"* * * *", "want 5 fields"},
		{"0 * * * * *", "want 5 fields"},
		{"", "pattern is required"},
		{"60 * * * *", "out of range"},
		{"0 24 * * *", "out of range"},
		{"0 0 0 * *", "out of range"},
		{"0 0 32 * *", "out of range"},
		{"0 0 * 13 *", "out of range"},
		{"0 0 * * 8", "out of range"},
		{"*/0 * * * *", "bad step"},
		{"*/99 * * * *", "bad step"},
		{"5-1 * * * *", "bad range"},
		{"1-2-3 * * * *", "bad range"},
		{"x * * * *", "bad value"},
		{"0 0 30 2 *", "never fires"},
		{"*/30 * * * *", ""}, // valid: every 30 minutes
	} {
		t.Run(tc.pat, func(t *testing.T) {
			code, m := e.with(t).do("POST", "/v1/p/triggers", triggerReq("t", tc.pat))
			if tc.msg == "" {
				if code != 200 {
					t.Fatalf("valid pattern refused: %d %v", code, m)
				}
				return
			}
			if code != 400 {
				t.Fatalf("status %d: %v", code, m)
			}
			if msg := fault(t, m, "badRequest", 400); !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q lacks %q", msg, tc.msg)
			}
		})
	}
}

// FuzzDecodeRequest drives the request decoders and the conversions the
// handlers apply to their results: nothing may panic, and every refusal
// is a client error.
func FuzzDecodeRequest(f *testing.F) {
	kinds := []string{"plan", "checkpoint", "restore", "verification", "trigger", "scheduled_operation", "quota"}
	seeds := []string{
		`{"plan":{"name":"p","provider_id":"` + prov + `","resources":[{"id":"a","type":"OS::Cairn::File","name":"n","extra_info":{}}],"parameters":{}}}`,
		`{"checkpoint":{"plan_id":"x","extra-info":{"a":1}}}`,
		`{"restore":{"provider_id":"a","checkpoint_id":"b","restore_target":"/x","restore_auth":{},"parameters":{"t":{"restore_path":"/y"}}}}`,
		`{"verification":{"provider_id":"a","checkpoint_id":"b","parameters":{}}}`,
		`{"trigger_info":{"name":"t","type":"time","properties":{"pattern":"0 * * * *","window":60,"x":true}}}`,
		`{"scheduled_operation":{"name":"o","operation_type":"protect","trigger_id":"t","operation_definition":{"plan_id":"p"}}}`,
		`{"quota":{"plans":3}}`,
		`{"plan":null}`, `[]`, `{"plan":{}} x`, "\x00", `{"trigger_info":{"properties":{"a":[1]}}}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, k uint8, b []byte) {
		kind := kinds[int(k)%len(kinds)]
		v, err := decodeRequest(kind, b)
		if err != nil {
			rec := httptest.NewRecorder()
			writeError(rec, err)
			if rec.Code != 400 {
				t.Fatalf("decode error is %d, want 400: %v", rec.Code, err)
			}
			return
		}
		switch x := v.(type) {
		case *planBody:
			_ = planInput(x)
		case *triggerBody:
			if _, err := stringProps(x.TriggerInfo.Properties); err != nil {
				rec := httptest.NewRecorder()
				writeError(rec, err)
				if rec.Code != 400 {
					t.Fatalf("props error is %d", rec.Code)
				}
			}
		}
		_ = checkUUID("x", string(b))
	})
}

// TestBusyIs429: a job refused because its project has too many waiting
// is a 429 overLimit fault with Retry-After, saying which limit to raise.
func TestBusyIs429(t *testing.T) {
	w := httptest.NewRecorder()
	err := fmt.Errorf("project p has 64 jobs waiting, its limit (config key project_max_queued): retry later: %w", appliance.ErrBusy)
	writeError(w, err)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", w.Code)
	}
	if ra := w.Header().Get("Retry-After"); ra != busyRetryAfter {
		t.Fatalf("Retry-After %q, want %q", ra, busyRetryAfter)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	msg := fault(t, m, "overLimit", 429)
	if !strings.Contains(msg, "project_max_queued") {
		t.Fatalf("message %q does not name the limit", msg)
	}
	if f := m["overLimit"].(map[string]any); f["retryAfter"] != busyRetryAfter {
		t.Fatalf("retryAfter %v", f["retryAfter"])
	}
}

// scrapeIdle parses /metrics once no job is running or queued: a
// checkpoint is available a moment before its job is counted done.
func scrapeIdle(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		if gaugeSum(mfs, "cairn_jobs_running")+gaugeSum(mfs, "cairn_jobs_queued") == 0 {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatal("jobs still running or queued")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gaugeSum(mfs map[string]*dto.MetricFamily, name string) float64 {
	var n float64
	for _, m := range mfs[name].GetMetric() {
		n += m.GetGauge().GetValue()
	}
	return n
}

// jobCount is the value of cairn_jobs_total{kind,status} (-1: absent).
func jobCount(mfs map[string]*dto.MetricFamily, kind, status string) float64 {
	for _, m := range mfs["cairn_jobs_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["kind"] == kind && l["status"] == status {
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestScheduledOperationWire: the wire form of a scheduled operation
// keeps its trust inside the appliance (Karbor's view has no trust_id),
// and Keystone refusing or missing a trust is 403 or 503.
func TestScheduledOperationWire(t *testing.T) {
	o := appliance.ScheduledOperation{ID: "op1", ProjectID: "p", Name: "n", OperationType: "protect", TriggerID: "t1",
		OperationDefinition: map[string]string{"plan_id": "pl"}, Enabled: true, TrustID: "trust-secret"}
	b, err := json.Marshal(opView(o))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "trust") || m["id"] != "op1" || m["trigger_id"] != "t1" || m["enabled"] != true ||
		m["operation_definition"].(map[string]any)["plan_id"] != "pl" {
		t.Fatalf("wire form %s: want Karbor's fields and no trust", b)
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("keystone answered 403: Trustor does not have role admin: %w", appliance.ErrDenied), http.StatusForbidden},
		{fmt.Errorf("connection refused: %w", appliance.ErrUnavailable), http.StatusServiceUnavailable},
	} {
		w := httptest.NewRecorder()
		writeError(w, tc.err)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), "Trustor does not have role") && tc.code == http.StatusForbidden {
			t.Errorf("%v: %d %s, want %d with Keystone's reason", tc.err, w.Code, w.Body, tc.code)
		}
	}
}
