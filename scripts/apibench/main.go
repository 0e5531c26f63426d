// Command apibench drives a running `cairn serve` for scripts/bench-api.sh.
// It starts nothing itself: -url names the daemon. Modes:
//
//	apibench seed -url U -project P -volumes DIR [-seed-seconds 60] [-target N] [-c 8]
//	apibench list -url U -project P [-path PATH] [-n 200]
//	apibench jobs -url U -project P -volumes DIR [-k 4] [-size-mib 64]
//	apibench burst -url U -project P -volumes DIR [-k 4] [-size-mib 64] [-start-at UNIX_NS]
//
// seed protects one plan holding a 4 KiB file as fast as the daemon accepts
// (the API cannot write checkpoint records without running jobs): -c
// clients each start a checkpoint and wait for it, for -seed-seconds or
// until -target checkpoints were protected, then
// it prints "checkpoints N checkpoints_per_s X state_writes_per_s Y"
// (the seeding rate, in checkpoints and in objects the appliance committed
// to its state database, from cairn_state_writes_total). list times -n sequential GETs of -path (default the
// checkpoint list, limit=1000) and prints "p50_ms X p99_ms Y". jobs writes
// 2*K random files of -size-mib each under -volumes (apibench-seq-*.img,
// apibench-par-*.img), protects the first K one job at a time and the other
// K all at once, and prints "seq_mbs X par_mbs Y" (MB of file data per
// second of wall time). burst writes K random files for project P
// (apibench-burst-P-*.img), makes their plans, waits until -start-at (so
// that bursts of several projects, run as separate processes, start
// together), protects all K at once and prints "mbs X seconds Y".
// Progress goes to stderr.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	provider = "cf56bd3e-97a7-4078-b6d5-f36246333fd9"
	fileType = "OS::Cairn::File"
)

var (
	client  = &http.Client{Timeout: 120 * time.Second}
	baseURL string
	project string
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: apibench seed|list|jobs|burst [flags]"))
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	fs.StringVar(&baseURL, "url", "", "daemon base URL, e.g. http://127.0.0.1:8799")
	fs.StringVar(&project, "project", "bench", "project ID")
	volumes := fs.String("volumes", "", "DATA_DIR/volumes of the daemon (seed, jobs)")
	seedSeconds := fs.Int("seed-seconds", 60, "seed: time budget for creating checkpoints")
	target := fs.Int("target", 0, "seed: stop after this many checkpoints (0: only the time budget)")
	conc := fs.Int("c", 8, "seed: concurrent clients")
	path := fs.String("path", "", "list: path to GET (default the checkpoint list, limit=1000)")
	n := fs.Int("n", 200, "list: requests")
	k := fs.Int("k", 4, "jobs: files per phase")
	sizeMiB := fs.Int("size-mib", 64, "jobs: size of each file in MiB")
	startAt := fs.Int64("start-at", 0, "burst: protect at this time (Unix nanoseconds; 0: at once)")
	_ = fs.Parse(os.Args[2:])
	if baseURL == "" {
		fail(errors.New("-url is required"))
	}
	var err error
	switch mode {
	case "seed":
		err = seed(*volumes, time.Duration(*seedSeconds)*time.Second, *conc, *target)
	case "list":
		p := *path
		if p == "" {
			p = "/v1/" + project + "/providers/" + provider + "/checkpoints?limit=1000"
		}
		err = list(p, *n)
	case "jobs":
		err = jobs(*volumes, *k, int64(*sizeMiB)<<20)
	case "burst":
		err = burst(*volumes, *k, int64(*sizeMiB)<<20, time.Unix(0, *startAt))
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "apibench:", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "apibench: "+format+"\n", args...)
}

// call sends a request to path (under baseURL) and returns status and body.
func call(method, path string, v any) (int, []byte, error) {
	var rd io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, baseURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Auth-Token", "x")
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// api calls /v1/PROJECT+path, wants status want and decodes into out.
func api(want int, method, path string, in, out any) error {
	code, b, err := call(method, "/v1/"+project+path, in)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if code != want {
		return fmt.Errorf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// instanceIDs maps the file instances' names (absolute paths) to IDs.
func instanceIDs() (map[string]string, error) {
	var v struct {
		Instances []struct{ ID, Name string }
	}
	if err := api(200, "GET", "/protectables/"+fileType+"/instances", nil, &v); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, in := range v.Instances {
		m[in.Name] = in.ID
	}
	return m, nil
}

// makePlans creates one plan per file in paths.
func makePlans(paths []string) ([]string, error) {
	ids, err := instanceIDs()
	if err != nil {
		return nil, err
	}
	var plans []string
	for _, p := range paths {
		id, ok := ids[p]
		if !ok {
			return nil, fmt.Errorf("no protectable instance named %s", p)
		}
		var v struct{ Plan struct{ ID string } }
		body := map[string]any{"plan": map[string]any{"name": filepath.Base(p), "provider_id": provider,
			"resources": []map[string]any{{"id": id, "type": fileType, "name": filepath.Base(p)}}}}
		if err := api(200, "POST", "/plans", body, &v); err != nil {
			return nil, err
		}
		plans = append(plans, v.Plan.ID)
	}
	return plans, nil
}

var errQueueFull = errors.New("queue full")

// protect starts a checkpoint of plan; errQueueFull on 409.
func protect(plan string) (string, error) {
	path := "/providers/" + provider + "/checkpoints"
	code, b, err := call("POST", "/v1/"+project+path, map[string]any{"checkpoint": map[string]any{"plan_id": plan}})
	if err != nil {
		return "", err
	}
	if code == http.StatusConflict {
		return "", errQueueFull
	}
	if code != http.StatusAccepted {
		return "", fmt.Errorf("POST %s: %d %s", path, code, b)
	}
	var v struct{ Checkpoint struct{ ID string } }
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	return v.Checkpoint.ID, nil
}

// wait polls checkpoint id until it is no longer protecting.
func wait(id string) error {
	for {
		var v struct {
			Checkpoint struct {
				Status      string `json:"status"`
				ErrorReason string `json:"error_reason"`
			}
		}
		if err := api(200, "GET", "/providers/"+provider+"/checkpoints/"+id, nil, &v); err != nil {
			return err
		}
		switch v.Checkpoint.Status {
		case "available":
			return nil
		case "protecting":
			time.Sleep(10 * time.Millisecond)
		default:
			return fmt.Errorf("checkpoint %s: %s %s", id, v.Checkpoint.Status, v.Checkpoint.ErrorReason)
		}
	}
}

// countCheckpoints returns how many checkpoints the project has and how
// many of them are still protecting.
func countCheckpoints() (total, protecting int, err error) {
	marker := ""
	for {
		path := "/providers/" + provider + "/checkpoints?limit=1000"
		if marker != "" {
			path += "&marker=" + marker
		}
		var v struct {
			Checkpoints []struct{ ID, Status string }
		}
		if err := api(200, "GET", path, nil, &v); err != nil {
			return 0, 0, err
		}
		for _, c := range v.Checkpoints {
			total++
			if c.Status == "protecting" {
				protecting++
			}
		}
		if len(v.Checkpoints) < 1000 {
			return total, protecting, nil
		}
		marker = v.Checkpoints[len(v.Checkpoints)-1].ID
	}
}

func seed(volumes string, budget time.Duration, conc, target int) error {
	if volumes == "" {
		return errors.New("seed: -volumes is required")
	}
	f := filepath.Join(volumes, "apibench-seed.img")
	if err := writeRandom(f, 4096); err != nil {
		return err
	}
	plans, err := makePlans([]string{f})
	if err != nil {
		return err
	}
	// Closed loop: each client waits for its checkpoint before starting
	// the next, so the count is what the engine completes in the budget
	// (an open loop only fills the 4096-job queue and leaves it draining).
	// started reserves a checkpoint of the target before it is asked for.
	var started, done, refused atomic.Int64
	var firstErr error
	var mu sync.Mutex
	writes0, err := stateWrites()
	if err != nil {
		return err
	}
	start := time.Now()
	stop := start.Add(budget)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) && (target <= 0 || started.Add(1) <= int64(target)) {
				id, err := protect(plans[0])
				if errors.Is(err, errQueueFull) {
					started.Add(-1)
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if err == nil {
					err = wait(id)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	writes1, err := stateWrites()
	if err != nil {
		return err
	}
	total, protecting, err := countCheckpoints()
	if err != nil {
		return err
	}
	logf("seed: %d checkpoints protected in %v by %d clients (%d refused: queue full); list holds %d (%d protecting); %d state objects written",
		done.Load(), elapsed.Round(time.Second), conc, refused.Load(), total, protecting, writes1-writes0)
	fmt.Printf("checkpoints %d checkpoints_per_s %.1f state_writes_per_s %.1f\n", total,
		float64(done.Load())/elapsed.Seconds(), float64(writes1-writes0)/elapsed.Seconds())
	return nil
}

// stateWrites reads cairn_state_writes_total, the objects the appliance
// has committed to its state database.
func stateWrites() (int64, error) {
	code, b, err := call("GET", "/metrics", nil)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d", code)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "cairn_state_writes_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, errors.New("/metrics has no cairn_state_writes_total: is the daemon older than the bbolt state store?")
}

func list(path string, n int) error {
	lat := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		code, b, err := call("GET", path, nil)
		d := time.Since(t)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("GET %s: %d %s", path, code, b)
		}
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		i := int(p*float64(len(lat))+0.5) - 1
		i = max(0, min(i, len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	fmt.Printf("p50_ms %.2f p99_ms %.2f\n", pct(0.50), pct(0.99))
	return nil
}

func jobs(volumes string, k int, size int64) error {
	if volumes == "" {
		return errors.New("jobs: -volumes is required")
	}
	var seqFiles, parFiles []string
	for i := range k {
		for _, set := range []struct {
			prefix string
			list   *[]string
		}{{"seq", &seqFiles}, {"par", &parFiles}} {
			p := filepath.Join(volumes, fmt.Sprintf("apibench-%s-%d.img", set.prefix, i))
			if err := writeRandom(p, size); err != nil {
				return err
			}
			*set.list = append(*set.list, p)
		}
	}
	seqPlans, err := makePlans(seqFiles)
	if err != nil {
		return err
	}
	parPlans, err := makePlans(parFiles)
	if err != nil {
		return err
	}
	mb := float64(int64(k)*size) / 1e6

	start := time.Now()
	for _, p := range seqPlans {
		id, err := protect(p)
		if err != nil {
			return err
		}
		if err := wait(id); err != nil {
			return err
		}
	}
	seq := time.Since(start)
	logf("jobs: %d x %d MiB one at a time: %v", k, size>>20, seq.Round(time.Millisecond))

	par, err := protectAll(parPlans)
	if err != nil {
		return err
	}
	logf("jobs: %d x %d MiB all at once: %v", k, size>>20, par.Round(time.Millisecond))
	fmt.Printf("seq_mbs %.1f par_mbs %.1f\n", mb/seq.Seconds(), mb/par.Seconds())
	return nil
}

func burst(volumes string, k int, size int64, startAt time.Time) error {
	if volumes == "" {
		return errors.New("burst: -volumes is required")
	}
	var files []string
	for i := range k {
		p := filepath.Join(volumes, fmt.Sprintf("apibench-burst-%s-%d.img", project, i))
		if err := writeRandom(p, size); err != nil {
			return err
		}
		files = append(files, p)
	}
	plans, err := makePlans(files)
	if err != nil {
		return err
	}
	if wait := time.Until(startAt); wait > 0 {
		time.Sleep(wait)
	} else if startAt.Unix() > 0 {
		logf("burst: project %s was ready %v after -start-at: the bursts did not start together", project, -wait)
	}
	d, err := protectAll(plans)
	if err != nil {
		return err
	}
	logf("burst: project %s, %d x %d MiB at once: %v", project, k, size>>20, d.Round(time.Millisecond))
	fmt.Printf("mbs %.1f seconds %.3f\n", float64(int64(k)*size)/1e6/d.Seconds(), d.Seconds())
	return nil
}

// protectAll starts a checkpoint of every plan at once and returns how
// long it took until all were available.
func protectAll(plans []string) (time.Duration, error) {
	start := time.Now()
	ids := make([]string, 0, len(plans))
	for _, p := range plans {
		id, err := protect(p)
		if err != nil {
			return 0, err
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := wait(id); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
