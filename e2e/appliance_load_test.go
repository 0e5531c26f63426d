package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestApplianceLoad runs 16 concurrent API clients for 10 s (or 200
// requests each) creating, listing, showing, updating and deleting plans
// and starting checkpoints, then checks that nothing was lost: every plan
// reads back as its client last wrote it, deleted plans are gone, every
// checkpoint ends available, the daemon is healthy and /metrics parses.
func TestApplianceLoad(t *testing.T) {
	const (
		clients  = 16
		maxReqs  = 200
		duration = 10 * time.Second
		pr       = "load"
	)
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	var srcs, srcIDs []string
	for i := range 4 {
		p := filepath.Join(vols, fmt.Sprintf("small%d.img", i))
		writeRandomFile(t, p, uint64(100+i), int64(64+i*32)*kib)
		srcs = append(srcs, p)
	}
	a := startAppliance(t, dir, map[string]any{"workers": 4})
	for _, p := range srcs {
		srcIDs = append(srcIDs, fileInstanceID(t, a, pr, p))
	}
	a.ok(200, pr, "PUT", "/quotas/"+pr, map[string]any{"quota": map[string]any{"plans": 100000}})

	type planState struct{ name, desc string }
	type clientState struct {
		plans       map[string]planState // live plans → last written
		deleted     []string
		checkpoints []string
		busy        int // checkpoint requests refused with 429
		requests    int
		errs        []string
	}
	states := make([]*clientState, clients)
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	for c := range clients {
		st := &clientState{plans: map[string]planState{}}
		states[c] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			fail := func(format string, args ...any) { st.errs = append(st.errs, fmt.Sprintf(format, args...)) }
			do := func(method, path string, v any) (apiResp, bool) {
				var b []byte
				if v != nil {
					b, _ = json.Marshal(v)
				}
				st.requests++
				r, err := a.try(method, "/v1/"+pr+path, b)
				if err != nil {
					fail("%s %s: %v", method, path, err)
					return r, false
				}
				return r, true
			}
			anyPlan := func() string {
				for id := range st.plans {
					return id
				}
				return ""
			}
			n := 0
			for st.requests < maxReqs && time.Now().Before(stop) && len(st.errs) < 5 {
				n++
				id := anyPlan()
				switch op := rng.IntN(10); {
				case op < 3 || id == "":
					name, desc := fmt.Sprintf("c%d-p%d", c, n), fmt.Sprintf("created by %d at %d", c, n)
					res := []map[string]any{{"id": srcIDs[rng.IntN(len(srcIDs))], "type": fileType, "name": "x"}}
					r, ok := do("POST", "/plans", map[string]any{"plan": map[string]any{"name": name, "description": desc,
						"provider_id": karborProvider, "resources": res}})
					if !ok {
						continue
					}
					var v struct {
						Plan struct{ ID, Name, Description string }
					}
					if r.code != 200 || json.Unmarshal(r.body, &v) != nil || v.Plan.Name != name || v.Plan.Description != desc {
						fail("create plan: %s", r)
						continue
					}
					st.plans[v.Plan.ID] = planState{name, desc}
				case op < 5:
					name, desc := fmt.Sprintf("c%d-u%d", c, n), fmt.Sprintf("updated by %d at %d", c, n)
					r, ok := do("PUT", "/plans/"+id, map[string]any{"plan": map[string]any{"name": name, "description": desc}})
					if !ok {
						continue
					}
					if r.code != 200 {
						fail("update plan: %s", r)
						continue
					}
					st.plans[id] = planState{name, desc}
				case op < 6:
					r, ok := do("GET", "/plans/"+id, nil)
					if !ok {
						continue
					}
					var v struct {
						Plan struct{ Name, Description string }
					}
					if r.code != 200 || json.Unmarshal(r.body, &v) != nil || v.Plan.Name != st.plans[id].name || v.Plan.Description != st.plans[id].desc {
						fail("show plan %s: want %+v: %s", id, st.plans[id], r)
					}
				case op < 7 && rng.IntN(2) == 0:
					// Checkpoints are read while workers update them.
					path := "/providers/" + karborProvider + "/checkpoints"
					if len(st.checkpoints) > 0 && rng.IntN(2) == 0 {
						path += "/" + st.checkpoints[rng.IntN(len(st.checkpoints))]
					}
					r, ok := do("GET", path, nil)
					if ok && r.code != 200 {
						fail("checkpoints: %s", r)
					}
				case op < 8:
					r, ok := do("GET", "/plans?limit=1000", nil)
					if !ok {
						continue
					}
					var v struct{ Plans []struct{ ID, Name string } }
					if r.code != 200 || json.Unmarshal(r.body, &v) != nil {
						fail("list plans: %s", r)
						continue
					}
					seen := map[string]string{}
					for _, p := range v.Plans {
						seen[p.ID] = p.Name
					}
					for pid, ps := range st.plans {
						if seen[pid] != ps.name {
							fail("plan list shows %s as %q, want %q", pid, seen[pid], ps.name)
						}
					}
					for _, pid := range st.deleted {
						if _, ok := seen[pid]; ok {
							fail("plan list shows deleted plan %s", pid)
						}
					}
				case op < 9:
					r, ok := do("DELETE", "/plans/"+id, nil)
					if !ok {
						continue
					}
					if r.code != 202 {
						fail("delete plan: %s", r)
						continue
					}
					delete(st.plans, id)
					st.deleted = append(st.deleted, id)
				default:
					if len(st.checkpoints) >= 12 {
						continue
					}
					r, ok := do("POST", "/providers/"+karborProvider+"/checkpoints", map[string]any{"checkpoint": map[string]any{"plan_id": id}})
					if !ok {
						continue
					}
					if r.code == 429 && r.header.Get("Retry-After") != "" {
						st.busy++ // the project's queue is full: a valid answer under load
						continue
					}
					var v struct{ Checkpoint struct{ ID string } }
					if r.code != 202 || json.Unmarshal(r.body, &v) != nil || v.Checkpoint.ID == "" {
						fail("create checkpoint: %s", r)
						continue
					}
					st.checkpoints = append(st.checkpoints, v.Checkpoint.ID)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(duration + 2*time.Minute):
		t.Fatalf("load clients still running 2 minutes after their deadline: deadlock?\ndaemon stderr: %s", clip(a.stderr.String()))
	}

	total, totalCPs, busy := 0, 0, 0
	live := map[string]planState{}
	var deleted, cps []string
	for c, st := range states {
		for _, e := range st.errs {
			t.Errorf("client %d: %s", c, e)
		}
		total += st.requests
		totalCPs += len(st.checkpoints)
		busy += st.busy
		for id, ps := range st.plans {
			live[id] = ps
		}
		deleted = append(deleted, st.deleted...)
		cps = append(cps, st.checkpoints...)
	}
	t.Logf("%d clients made %d requests: %d plans left, %d deleted, %d checkpoints, %d refused as busy",
		clients, total, len(live), len(deleted), totalCPs, busy)
	if total < clients*10 {
		t.Errorf("only %d requests in %v", total, duration)
	}

	// Every plan reads back as last written; deleted ones are gone.
	var list struct {
		Plans []struct{ ID, Name, Description string }
	}
	if err := json.Unmarshal(a.ok(200, pr, "GET", "/plans?limit=100000", nil).body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Plans) != len(live) {
		t.Errorf("%d plans listed, want %d", len(list.Plans), len(live))
	}
	for _, p := range list.Plans {
		want, ok := live[p.ID]
		if !ok {
			t.Errorf("plan %s (%s) listed but deleted or never created", p.ID, p.Name)
		} else if p.Name != want.name || p.Description != want.desc {
			t.Errorf("plan %s is %q/%q, want %q/%q (lost update)", p.ID, p.Name, p.Description, want.name, want.desc)
		}
	}
	for _, id := range deleted {
		checkFault(t, a.call(pr, "GET", "/plans/"+id, nil), 404)
	}

	// No job stays non-terminal: every checkpoint ends available.
	for _, id := range cps {
		if c := a.waitCheckpoint(pr, id); c["status"] != "available" {
			t.Errorf("checkpoint %s ended %v: %v", id, c["status"], c)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		running := 0
		for _, l := range a.ok(200, pr, "GET", "/operation_logs", nil).list(t, "operation_logs") {
			if l["status"] == "running" {
				running++
			}
		}
		if running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d operations still running a minute after the load", running)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := a.raw("GET", "/healthz", nil); r.code != 200 {
		t.Errorf("/healthz after load: %s", r)
	}
	// A job's log and checkpoint settle a moment before the job is
	// counted done: scrape once none runs.
	var m map[string]float64
	for {
		r := a.raw("GET", "/metrics", nil)
		if r.code != 200 {
			t.Fatalf("/metrics: %s", r)
		}
		m = checkPromText(t, string(r.body))
		if m["cairn_jobs_running"] == 0 && m["cairn_jobs_queued"] == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := m[`cairn_jobs_total{kind="protect",status="success"}`]; int(got) != totalCPs {
		t.Errorf("cairn_jobs_total protect success = %v, want %d", got, totalCPs)
	}
	if m["cairn_jobs_running"] != 0 || m["cairn_jobs_queued"] != 0 {
		t.Errorf("jobs running %v, queued %v after the load, want 0", m["cairn_jobs_running"], m["cairn_jobs_queued"])
	}
	if m["cairn_state_errors_total"] != 0 {
		t.Errorf("cairn_state_errors_total = %v", m["cairn_state_errors_total"])
	}
	a.stop()
}

// TestApplianceProjectQueueLimit: a burst of checkpoint requests from one
// project past project_max_queued gets 429 overLimit faults with
// Retry-After naming the limit, leaves no operation log for the refused
// ones, and every accepted checkpoint still ends available; another
// project is not refused meanwhile.
func TestApplianceProjectQueueLimit(t *testing.T) {
	const burst = 24
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	// Large enough that one protection outlasts the burst of requests.
	big := filepath.Join(vols, "big.img")
	writeRandomFile(t, big, 7, 64<<20)
	small := filepath.Join(vols, "small.img")
	writeRandomFile(t, small, 8, 64*kib)
	a := startAppliance(t, dir, map[string]any{"workers": 2, "project_max_queued": 1})
	flood, calm := a.createFilePlan("flood", "big", big), a.createFilePlan("calm", "small", small)

	type result struct {
		r   apiResp
		err error
	}
	results := make(chan result, burst)
	var wg sync.WaitGroup
	body, _ := json.Marshal(map[string]any{"checkpoint": map[string]any{"plan_id": flood}})
	for range burst {
		wg.Go(func() {
			r, err := a.try("POST", "/v1/flood/providers/"+karborProvider+"/checkpoints", body)
			results <- result{r, err}
		})
	}
	wg.Wait()
	close(results)
	var accepted []string
	refused := 0
	for res := range results {
		if res.err != nil {
			t.Fatal(res.err)
		}
		switch res.r.code {
		case 202:
			accepted = append(accepted, res.r.obj(t, "checkpoint")["id"].(string))
		case 429:
			refused++
			checkFault(t, res.r, 429)
			if ra := res.r.header.Get("Retry-After"); ra == "" {
				t.Errorf("429 without Retry-After: %s", res.r)
			}
			if !strings.Contains(string(res.r.body), "project_max_queued") || !strings.Contains(string(res.r.body), "overLimit") {
				t.Errorf("429 does not name the limit: %s", res.r)
			}
		default:
			t.Errorf("checkpoint request: %s", res.r)
		}
	}
	// At most one running (project_max_running 1 of 2 workers) and one
	// waiting at any moment, and the first protection takes far longer
	// than the burst: most of the burst is refused.
	if refused == 0 || len(accepted) == 0 {
		t.Fatalf("%d accepted, %d refused of %d: want both", len(accepted), refused, burst)
	}
	t.Logf("%d of %d checkpoint requests accepted, %d refused", len(accepted), burst, refused)
	cp := a.createCheckpoint("calm", calm)
	if c := a.waitCheckpoint("calm", cp); c["status"] != "available" {
		t.Errorf("other project's checkpoint ended %v", c["status"])
	}
	for _, id := range accepted {
		if c := a.waitCheckpoint("flood", id); c["status"] != "available" {
			t.Errorf("checkpoint %s ended %v", id, c["status"])
		}
	}
	if logs := a.ok(200, "flood", "GET", "/operation_logs", nil).list(t, "operation_logs"); len(logs) != len(accepted) {
		t.Errorf("%d operation logs, want one per accepted checkpoint (%d)", len(logs), len(accepted))
	}
	a.stop()
}
