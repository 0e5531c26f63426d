package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers of the appliance tests (karbor_test.go, appliance_crash_test.go,
// appliance_load_test.go): a `cairn serve` in the background, plain HTTP
// calls to its Karbor v1 API, and the real `karbor` CLI with parsers for
// its prettytable output (python3-karborclient has no JSON formatter).

// karborProvider is the ID of the built-in cairn provider.
const karborProvider = "cf56bd3e-97a7-4078-b6d5-f36246333fd9"

// fileType is the protectable type of the file plugin.
const fileType = "OS::Cairn::File"

// appliance is a running `cairn serve`.
type appliance struct {
	t       *testing.T
	dataDir string
	addr    string // HOST:PORT
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // of Wait, once done is closed
	stderr  *lockedBuffer
	client  *http.Client
}

// startAppliance runs `cairn serve` on a free port of 127.0.0.1 with
// dataDir and, if cfg is not nil, a config file holding cfg. It returns once
// /healthz answers. The test's cleanup stops it (SIGTERM) unless the test
// stopped or killed it first.
func startAppliance(t *testing.T, dataDir string, cfg map[string]any) *appliance {
	t.Helper()
	args := []string{"--json", "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}
	if cfg != nil {
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "cairn-serve.json")
		writeFile(t, f, b)
		args = append(args, "--config", f)
	}
	if noSync {
		args = append([]string{"--no-sync"}, args...)
	}
	s := &appliance{t: t, dataDir: dataDir, done: make(chan struct{}), stderr: &lockedBuffer{},
		client: &http.Client{Timeout: 60 * time.Second}}
	s.cmd = exec.Command(cairnBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type listenMsg struct {
		Listen string `json:"listen"`
		err    error
	}
	first := make(chan listenMsg, 1)
	go func() {
		br := bufio.NewReader(out)
		var v listenMsg
		v.err = json.NewDecoder(br).Decode(&v)
		first <- v
		_, _ = io.Copy(io.Discard, br)
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop() })
	select {
	case v := <-first:
		if v.err != nil || v.Listen == "" {
			t.Fatalf("cairn serve printed no {\"listen\": ADDR} first: %v\nstderr: %s", v.err, clip(s.stderr.String()))
		}
		s.addr = v.Listen
	case <-time.After(time.Minute):
		t.Fatalf("cairn serve did not start within a minute\nstderr: %s", clip(s.stderr.String()))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.Get(s.base() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cairn serve: /healthz not OK within 30s (%v)\nstderr: %s", err, clip(s.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *appliance) base() string { return "http://" + s.addr }

// url is the Karbor endpoint of project, as --karbor-url wants it.
func (s *appliance) url(project string) string { return s.base() + "/v1/" + project }

func (s *appliance) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and requires a clean exit (status 0) within 30 s and,
// under -race, no data race reported by the daemon.
func (s *appliance) stop() {
	t := s.t
	t.Helper()
	if s.exited() {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Errorf("cairn serve still running 30s after SIGTERM\nstderr: %s", clip(s.stderr.String()))
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.err != nil {
		t.Errorf("cairn serve after SIGTERM: %v (want exit 0)\nstderr: %s", s.err, clip(s.stderr.String()))
	}
	s.checkNoRace()
}

// kill sends SIGKILL and waits for the process to go.
func (s *appliance) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		s.t.Fatalf("SIGKILL: %v", err)
	}
	<-s.done
	s.checkNoRace()
}

func (s *appliance) checkNoRace() {
	s.t.Helper()
	if log := s.stderr.String(); strings.Contains(log, "WARNING: DATA RACE") {
		i := strings.Index(log, "WARNING: DATA RACE")
		s.t.Errorf("cairn serve reported a data race:\n%s", clip(log[i:]))
	}
}

// apiResp is one HTTP exchange with the API.
type apiResp struct {
	method, path string
	code         int
	header       http.Header
	body         []byte
}

func (r apiResp) String() string {
	return fmt.Sprintf("%s %s: %d %s", r.method, r.path, r.code, clip(string(r.body)))
}

// obj decodes the body as {key: object} and returns the object.
func (r apiResp) obj(t *testing.T, key string) map[string]any {
	t.Helper()
	var m map[string]map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil || m[key] == nil {
		t.Fatalf("want a %q object: %v\n%s", key, err, r)
	}
	return m[key]
}

// list decodes the body as {key: [objects]}.
func (r apiResp) list(t *testing.T, key string) []map[string]any {
	t.Helper()
	var m map[string][]map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("want a %q list: %v\n%s", key, err, r)
	}
	l, ok := m[key]
	if !ok {
		t.Fatalf("want a %q list\n%s", key, r)
	}
	return l
}

// raw sends a request with a raw body to the daemon's path (which starts
// with /) and returns the response. Transport errors fail the test.
func (s *appliance) raw(method, path string, body []byte) apiResp {
	s.t.Helper()
	r, err := s.try(method, path, body)
	if err != nil {
		s.t.Fatalf("%s %s: %v\nstderr: %s", method, path, err, clip(s.stderr.String()))
	}
	return r
}

// try is raw without failing the test; safe for other goroutines.
func (s *appliance) try(method, path string, body []byte) (apiResp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.base()+path, rd)
	if err != nil {
		return apiResp{}, err
	}
	req.Header.Set("X-Auth-Token", "x")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return apiResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResp{}, err
	}
	return apiResp{method: method, path: path, code: resp.StatusCode, header: resp.Header, body: b}, nil
}

// call sends v (JSON-encoded unless nil) to /v1/project/path.
func (s *appliance) call(project, method, path string, v any) apiResp {
	s.t.Helper()
	var b []byte
	if v != nil {
		var err error
		if b, err = json.Marshal(v); err != nil {
			s.t.Fatal(err)
		}
	}
	return s.raw(method, "/v1/"+project+path, b)
}

// ok is call, failing the test unless the status is want.
func (s *appliance) ok(want int, project, method, path string, v any) apiResp {
	s.t.Helper()
	r := s.call(project, method, path, v)
	if r.code != want {
		s.t.Fatalf("want %d: %s", want, r)
	}
	return r
}

// fault checks an OpenStack fault: status want, a JSON body with one key
// whose object has a non-empty message and the same code.
func checkFault(t *testing.T, r apiResp, want int) {
	t.Helper()
	if r.code != want {
		t.Errorf("want %d: %s", want, r)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("fault with Content-Type %q, want application/json: %s", ct, r)
	}
	var m map[string]struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil || len(m) != 1 {
		t.Errorf("fault body is not {name: {message, code}}: %v: %s", err, r)
		return
	}
	for _, f := range m {
		if strings.TrimSpace(f.Message) == "" || f.Code != want {
			t.Errorf("fault without a message or with code %d: %s", f.Code, r)
		}
	}
}

// createFilePlan creates a plan over the files at paths (instances of the
// file plugin) in project through the API and returns its id.
func (s *appliance) createFilePlan(project, name string, paths ...string) string {
	s.t.Helper()
	var res []map[string]any
	for _, p := range paths {
		res = append(res, map[string]any{"id": fileInstanceID(s.t, s, project, p), "type": fileType, "name": p})
	}
	r := s.ok(200, project, "POST", "/plans", map[string]any{"plan": map[string]any{
		"name": name, "provider_id": karborProvider, "resources": res, "parameters": map[string]any{}}})
	return r.obj(s.t, "plan")["id"].(string)
}

// fileInstanceID finds the instance ID of the file at path.
func fileInstanceID(t *testing.T, s *appliance, project, path string) string {
	t.Helper()
	r := s.ok(200, project, "GET", "/protectables/"+fileType+"/instances", nil)
	for _, in := range r.list(t, "instances") {
		if in["name"] == path {
			return in["id"].(string)
		}
	}
	t.Fatalf("no instance named %s: %s", path, r)
	return ""
}

// createCheckpoint starts protecting plan and returns the checkpoint id.
func (s *appliance) createCheckpoint(project, plan string) string {
	s.t.Helper()
	r := s.ok(202, project, "POST", "/providers/"+karborProvider+"/checkpoints",
		map[string]any{"checkpoint": map[string]any{"plan_id": plan}})
	c := r.obj(s.t, "checkpoint")
	if c["status"] != "protecting" {
		s.t.Errorf("new checkpoint has status %v, want protecting", c["status"])
	}
	return c["id"].(string)
}

// waitStatus polls GET path until its key object's status is not one of
// running, and returns the object. It fails the test after limit.
func (s *appliance) waitStatus(project, path, key string, limit time.Duration, running ...string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		o := s.ok(200, project, "GET", path, nil).obj(s.t, key)
		st, _ := o["status"].(string)
		still := false
		for _, r := range running {
			still = still || st == r
		}
		if !still {
			return o
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s still %q after %v: %v\nstderr: %s", path, st, limit, o, clip(s.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCheckpoint waits (60 s at most) for a checkpoint to leave
// "protecting" and returns it.
func (s *appliance) waitCheckpoint(project, id string) map[string]any {
	s.t.Helper()
	return s.waitStatus(project, "/providers/"+karborProvider+"/checkpoints/"+id, "checkpoint", 2*time.Minute, "protecting")
}

// restoreFiles restores checkpoint cp, resource id → restore path, and
// waits for it to succeed.
func (s *appliance) restoreFiles(project, cp string, to map[string]string) map[string]any {
	s.t.Helper()
	params := map[string]any{}
	for id, p := range to {
		params[fileType+"#"+id] = map[string]any{"restore_path": p}
	}
	r := s.ok(202, project, "POST", "/restores", map[string]any{"restore": map[string]any{
		"provider_id": karborProvider, "checkpoint_id": cp, "parameters": params}})
	id := r.obj(s.t, "restore")["id"].(string)
	o := s.waitStatus(project, "/restores/"+id, "restore", 2*time.Minute, "in_progress")
	if o["status"] != "success" {
		s.t.Fatalf("restore %s of checkpoint %s: %v", id, cp, o)
	}
	return o
}

// writeRandomFile writes n pseudo-random bytes from seed to path in
// pieces, so that large files do not need as much memory.
func writeRandomFile(t *testing.T, path string, seed uint64, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	if _, err := io.Copy(f, io.LimitReader(rand.NewChaCha8(s), n)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// karborCLI runs the real karbor client against one project of a.
type karborCLI struct {
	t       *testing.T
	bin     string
	a       *appliance
	project string
	// osEnv, when set, are OS_* credentials: the client logs in to
	// Keystone and finds the appliance in the catalog, as an operator's
	// would. Without them it runs in noauth mode against a.url(project).
	osEnv []string
	// token, when set, is sent instead of "x" with --karbor-url (a real
	// Keystone token, as an operator scripting with a token would).
	token string
}

// requireKarbor returns the karbor client for project of a, skipping the
// test when python3-karborclient is not installed (fatal under
// CAIRN_REQUIRE_ALL=1).
func requireKarbor(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("karbor")
	if err != nil {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatalf("karbor is required (CAIRN_REQUIRE_ALL=1) but not found: %v", err)
		}
		t.Skipf("karbor not found (%v); install python3-karborclient or set CAIRN_REQUIRE_ALL=1 to make this fatal", err)
	}
	return p
}

// lookKarbor returns the karbor client's path, or "" when it is missing.
func lookKarbor() string {
	p, _ := exec.LookPath("karbor")
	return p
}

func (k karborCLI) run(args ...string) result {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	token := "x"
	if k.token != "" {
		token = k.token
	}
	full := append([]string{"--os-no-client-auth", "--os-auth-token", token, "--karbor-url", k.a.url(k.project)}, args...)
	if k.osEnv != nil {
		full = args
	}
	cmd := exec.CommandContext(ctx, k.bin, full...)
	cmd.Env = append(os.Environ(), "PYTHONWARNINGS=ignore")
	if k.osEnv != nil {
		cmd.Env = append(withoutOSEnv(os.Environ()), k.osEnv...)
		cmd.Env = append(cmd.Env, "PYTHONWARNINGS=ignore")
	}
	r := execute(k.t, ctx, cmd, "karbor", args)
	r.args = append([]string{"[karbor]"}, args...)
	return r
}

// withoutOSEnv drops OS_* variables, so that only the test's credentials
// reach a client.
func withoutOSEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "OS_") {
			out = append(out, kv)
		}
	}
	return out
}

// must runs karbor and fails the test unless it exits 0.
func (k karborCLI) must(args ...string) string {
	k.t.Helper()
	r := k.run(args...)
	if r.code != 0 {
		k.t.Fatalf("karbor failed:\n%s\ndaemon stderr: %s", r, clip(k.a.stderr.String()))
	}
	return r.stdout
}

// dict runs a show/create command and parses its Property/Value table.
func (k karborCLI) dict(args ...string) map[string]string {
	k.t.Helper()
	out := k.must(args...)
	d := parseDictTable(out)
	if len(d) == 0 {
		k.t.Fatalf("karbor %s printed no property table:\n%s", strings.Join(args, " "), out)
	}
	return d
}

// table runs a list command and parses its table.
func (k karborCLI) table(args ...string) []map[string]string {
	k.t.Helper()
	return parseListTable(k.must(args...))
}

// tableCells splits one "| a | b |" line into its trimmed cells, or
// returns nil for border and other lines.
func tableCells(line string) []string {
	line = strings.TrimRight(line, " \r")
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil
	}
	parts := strings.Split(line[1:len(line)-1], "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// parseDictTable parses prettytable's Property | Value layout; a value
// continued on further lines (JSON printed with indent) is joined with
// newlines. Values must not contain "|".
func parseDictTable(out string) map[string]string {
	d := map[string]string{}
	last := ""
	header := true
	for _, line := range strings.Split(out, "\n") {
		c := tableCells(line)
		if len(c) != 2 {
			continue
		}
		if header {
			header = false // "Property | Value"
			continue
		}
		if c[0] != "" {
			last = c[0]
			d[last] = c[1]
		} else if last != "" {
			d[last] += "\n" + c[1]
		}
	}
	return d
}

// parseListTable parses a prettytable list: the first row names the
// columns; a row whose first cell is empty continues the previous one.
func parseListTable(out string) []map[string]string {
	var cols []string
	var rows []map[string]string
	for _, line := range strings.Split(out, "\n") {
		c := tableCells(line)
		if c == nil {
			continue
		}
		if cols == nil {
			cols = c
			continue
		}
		if len(c) != len(cols) {
			continue
		}
		if c[0] == "" && len(rows) > 0 {
			r := rows[len(rows)-1]
			for i, v := range c {
				if v != "" {
					r[cols[i]] += "\n" + v
				}
			}
			continue
		}
		r := map[string]string{}
		for i, v := range c {
			r[cols[i]] = v
		}
		rows = append(rows, r)
	}
	return rows
}

// column returns one column of rows.
func column(rows []map[string]string, name string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r[name])
	}
	return out
}

// checkPromText checks that text is in the Prometheus text exposition
// format: comments, and samples NAME{LABELS} VALUE with a float value.
func checkPromText(t *testing.T, text string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	for n, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) < 3 || (f[1] != "HELP" && f[1] != "TYPE") {
				t.Errorf("/metrics line %d: bad comment %q", n+1, line)
			}
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			t.Errorf("/metrics line %d: no value: %q", n+1, line)
			continue
		}
		name, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Errorf("/metrics line %d: value %q: %v", n+1, val, err)
		}
		metric := name
		if j := strings.IndexByte(name, '{'); j >= 0 {
			metric = name[:j]
			if !strings.HasSuffix(name, "}") {
				t.Errorf("/metrics line %d: unterminated labels: %q", n+1, line)
			}
		}
		for _, r := range metric {
			if !(r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Errorf("/metrics line %d: bad metric name %q", n+1, metric)
				break
			}
		}
		samples[name] = v
	}
	if len(samples) == 0 {
		t.Errorf("/metrics has no samples:\n%s", text)
	}
	return samples
}
