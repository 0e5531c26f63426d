// Command consolebench measures the cairn console (scripts/bench-console.sh
// runs it): it seeds a project of a running noauth `cairn serve` with
// RESOURCES protected files and CHECKPOINTS checkpoints, then loads the
// console's project view in headless chromium LOADS times and prints
// Chromium's first contentful paint and the console's time to interactive
// (every section rendered from its API answers: the performance mark
// cairn-interactive), beside the API calls the view rests on, each the
// median of N sequential requests.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cairn/internal/webdriver"
)

const (
	provider = "cf56bd3e-97a7-4078-b6d5-f36246333fd9"
	fileType = "OS::Cairn::File"
)

var (
	baseURL, project string
	client           = &http.Client{Timeout: 5 * time.Minute}
)

func main() {
	flag.StringVar(&baseURL, "url", "", "daemon base URL, e.g. http://127.0.0.1:8799")
	flag.StringVar(&project, "project", "console", "project ID")
	volumes := flag.String("volumes", "", "the project's file root (DATA_DIR/volumes)")
	resources := flag.Int("resources", 1000, "protected files (one plan each)")
	checkpoints := flag.Int("checkpoints", 10000, "checkpoints to seed, round robin over the plans")
	seedSeconds := flag.Int("seed-seconds", 1200, "seeding time limit")
	conc := flag.Int("c", 8, "concurrent seeding clients")
	loads := flag.Int("loads", 5, "page loads measured")
	n := flag.Int("n", 20, "requests per API figure")
	chromium := flag.String("chromium", "chromium", "chromium binary")
	driver := flag.String("chromedriver", "chromedriver", "chromedriver binary")
	flag.Parse()
	if baseURL == "" || *volumes == "" {
		fail(errors.New("-url and -volumes are required"))
	}
	ctx := context.Background()
	total, err := seed(*volumes, *resources, *checkpoints, *conc, time.Duration(*seedSeconds)*time.Second)
	if err != nil {
		fail(err)
	}
	scale := fmt.Sprintf("%d resources, %d checkpoints", *resources, total)
	apis := []struct{ name, path string }{
		{"GET resources", "/v1/" + project + "/resources"},
		{"GET summary", "/v1/" + project + "/summary"},
		{"GET checkpoints?status=protecting (jobs poll)", "/v1/" + project + "/providers/" + provider + "/checkpoints?status=protecting&limit=100"},
		{"GET checkpoints?limit=1000", "/v1/" + project + "/providers/" + provider + "/checkpoints?limit=1000"},
	}
	var slowest time.Duration
	for _, a := range apis {
		d, err := median(*n, func() error { return get(a.path) })
		if err != nil {
			fail(err)
		}
		slowest = max(slowest, d)
		fmt.Printf("console API %s (%s): p50 %s\n", a.name, scale, ms(d))
	}
	fcp, tti, err := browse(ctx, *chromium, *driver, *loads)
	if err != nil {
		fail(err)
	}
	fmt.Printf("console first contentful paint (%s): p50 %s over %d loads\n", scale, ms(fcp), *loads)
	fmt.Printf("console time to interactive (%s): p50 %s over %d loads (ceiling: the slowest API call it waits for, p50 %s)\n", scale, ms(tti), *loads, ms(slowest))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "consolebench:", err)
	os.Exit(1)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "consolebench: "+format+"\n", args...) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// median runs fn n times and returns the median duration.
func median(n int, fn func() error) (time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

func call(method, path string, v, out any) (int, error) {
	var rd io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, baseURL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", "noauth")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

func get(path string) error { _, err := call("GET", path, nil, nil); return err }

// seed writes the files, one plan per file (raising the plan quota), and
// protects the plans round robin until target checkpoints or the budget.
// It returns the checkpoints the project has.
func seed(volumes string, resources, target, conc int, budget time.Duration) (int, error) {
	p := "/v1/" + project
	if _, err := call("PUT", p+"/quotas/"+project, map[string]any{"quota": map[string]any{"plans": resources + 10}}, nil); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(volumes, 0o755); err != nil {
		return 0, err
	}
	buf := make([]byte, 4096)
	for i := range resources {
		_, _ = rand.Read(buf)
		if err := os.WriteFile(filepath.Join(volumes, fmt.Sprintf("vol-%05d.img", i)), buf, 0o644); err != nil {
			return 0, err
		}
	}
	var inst struct{ Instances []struct{ ID, Name string } }
	if _, err := call("GET", p+"/protectables/"+fileType+"/instances?limit=1000", nil, &inst); err != nil {
		return 0, err
	}
	var plans []string
	for _, in := range inst.Instances {
		var v struct{ Plan struct{ ID string } }
		body := map[string]any{"plan": map[string]any{"name": filepath.Base(in.Name), "provider_id": provider,
			"resources": []map[string]any{{"id": in.ID, "type": fileType, "name": in.Name}}}}
		if _, err := call("POST", p+"/plans", body, &v); err != nil {
			return 0, err
		}
		plans = append(plans, v.Plan.ID)
	}
	logf("seed: %d plans; protecting until %d checkpoints or %v", len(plans), target, budget)
	var next, done atomic.Int64
	var mu sync.Mutex
	var firstErr error
	stop := time.Now().Add(budget)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) {
				i := next.Add(1) - 1
				if i >= int64(target) {
					return
				}
				err := protect(plans[int(i)%len(plans)])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if d := done.Add(1); d%500 == 0 {
					logf("seed: %d checkpoints", d)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	var s struct{ Projects []struct{ Checkpoints int } }
	if _, err := call("GET", p+"/summary", nil, &s); err != nil {
		return 0, err
	}
	return s.Projects[0].Checkpoints, nil
}

// protect makes one checkpoint of plan and waits for it, retrying while
// the project's queue is full.
func protect(plan string) error {
	path := "/v1/" + project + "/providers/" + provider + "/checkpoints"
	var v struct{ Checkpoint struct{ ID string } }
	for {
		code, err := call("POST", path, map[string]any{"checkpoint": map[string]any{"plan_id": plan}}, &v)
		if code == http.StatusTooManyRequests || code == http.StatusConflict {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	for {
		var c struct {
			Checkpoint struct{ Status, ErrorReason string }
		}
		if _, err := call("GET", path+"/"+v.Checkpoint.ID, nil, &c); err != nil {
			return err
		}
		switch c.Checkpoint.Status {
		case "available":
			return nil
		case "protecting":
			time.Sleep(10 * time.Millisecond)
		default:
			return fmt.Errorf("checkpoint %s: %s %s", v.Checkpoint.ID, c.Checkpoint.Status, c.Checkpoint.ErrorReason)
		}
	}
}

// browse loads the project view loads times and returns the medians of
// first contentful paint and time to interactive, from the navigation's
// start.
func browse(ctx context.Context, chromium, driver string, loads int) (fcp, tti time.Duration, err error) {
	// chromedriver wants the browser's path, not a name to look up.
	if chromium, err = exec.LookPath(chromium); err != nil {
		return 0, 0, err
	}
	if driver, err = exec.LookPath(driver); err != nil {
		return 0, 0, err
	}
	prof, err := os.MkdirTemp("", "consolebench-profile-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(prof)
	b, err := webdriver.Start(ctx, webdriver.Options{Chromium: chromium, Driver: driver, ProfileDir: prof})
	if err != nil {
		return 0, 0, err
	}
	defer b.Close()
	if err := b.Open(ctx, baseURL+"/"); err != nil {
		return 0, 0, err
	}
	if err := b.JS(ctx, nil, `sessionStorage.setItem('cairn.session', JSON.stringify({token: 'noauth', user: 'noauth', noauth: true, admin: false, project: arguments[0]}))`, project); err != nil {
		return 0, 0, err
	}
	var fcps, ttis []time.Duration
	for i := range loads {
		// A new query string: a full navigation, not a hash change.
		if err := b.Open(ctx, fmt.Sprintf("%s/?load=%d#/project/%s", baseURL, i, project)); err != nil {
			return 0, 0, err
		}
		if _, err := b.Wait(ctx, 5*time.Minute, "return document.querySelector('main').dataset.ready === 'yes'"); err != nil {
			return 0, 0, fmt.Errorf("load %d: the project view did not become ready: %w", i, err)
		}
		var t struct {
			FCP float64 `json:"fcp"`
			TTI float64 `json:"tti"`
		}
		if err := b.JS(ctx, &t, `const p = performance.getEntriesByName('first-contentful-paint')[0];
			const m = performance.getEntriesByName('cairn-interactive')[0];
			return {fcp: p ? p.startTime : -1, tti: m ? m.startTime : -1}`); err != nil {
			return 0, 0, err
		}
		if t.FCP < 0 || t.TTI < 0 {
			return 0, 0, fmt.Errorf("load %d: no paint or interactive timing (%+v)", i, t)
		}
		fcps = append(fcps, time.Duration(t.FCP*float64(time.Millisecond)))
		ttis = append(ttis, time.Duration(t.TTI*float64(time.Millisecond)))
	}
	slices.Sort(fcps)
	slices.Sort(ttis)
	return fcps[len(fcps)/2], ttis[len(ttis)/2], nil
}
