package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKarborCLI drives `cairn serve` with the real Karbor client
// (python3-karborclient): providers, protectables, a plan of two files,
// a checkpoint with its sizes, a byte-exact restore of each file, listing
// and deleting checkpoints, and a trigger with a scheduled operation that
// fires during the test and keeps at most two checkpoints.
func TestKarborCLI(t *testing.T) {
	bin := requireKarbor(t)
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	fileA, fileB := filepath.Join(vols, "a.img"), filepath.Join(vols, "b.img")
	sizeA, sizeB := 4*mib, 3*mib/2+123 // b ends in a partial block
	writeRandomFile(t, fileA, 1, sizeA)
	writeRandomFile(t, fileB, 2, sizeB)

	a := startAppliance(t, dir, map[string]any{"min_interval": "1s"})
	k := karborCLI{t: t, bin: bin, a: a, project: "demo"}

	provs := k.table("provider-list")
	if !slices.Contains(column(provs, "Id"), karborProvider) || !slices.Contains(column(provs, "Name"), "cairn") {
		t.Fatalf("provider-list lacks the cairn provider %s: %v", karborProvider, provs)
	}
	if got := column(k.table("protectable-list"), "Protectable type"); !slices.Contains(got, fileType) {
		t.Fatalf("protectable-list: %v, want %s among them", got, fileType)
	}
	ids := map[string]string{} // path → instance id
	for _, r := range k.table("protectable-list-instances", fileType) {
		if r["Type"] != fileType {
			t.Errorf("instance of type %q listed for %s: %v", r["Type"], fileType, r)
		}
		ids[r["Name"]] = r["Id"]
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, p := range []string{fileA, fileB} {
		if !uuid.MatchString(ids[p]) {
			t.Fatalf("protectable-list-instances: %s has id %q, want a UUID (all: %v)", p, ids[p], ids)
		}
	}
	idA, idB := ids[fileA], ids[fileB]

	// A plan of both files.
	plan := k.dict("plan-create", "cli-plan", karborProvider,
		fmt.Sprintf("%s=%s=%s,%s=%s=%s", idA, fileType, fileA, idB, fileType, fileB), "--description", "two files")
	planID := plan["id"]
	if !uuid.MatchString(planID) || plan["name"] != "cli-plan" || plan["description"] != "two files" || plan["status"] != "suspended" {
		t.Fatalf("plan-create printed %v", plan)
	}
	var planRes []struct{ ID, Type, Name string }
	if err := json.Unmarshal([]byte(plan["resources"]), &planRes); err != nil || len(planRes) != 2 {
		t.Fatalf("plan-create resources %q: %v", plan["resources"], err)
	}
	if got := k.dict("plan-show", planID); got["id"] != planID || got["name"] != "cli-plan" {
		t.Fatalf("plan-show %s: %v", planID, got)
	}

	// A checkpoint, polled to available, with exact sizes.
	cp := k.dict("checkpoint-create", karborProvider, planID)
	cpID := cp["id"]
	if !uuid.MatchString(cpID) || (cp["status"] != "protecting" && cp["status"] != "available") {
		t.Fatalf("checkpoint-create printed %v", cp)
	}
	deadline := time.Now().Add(60 * time.Second)
	for cp["status"] == "protecting" {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint %s still protecting after 60s: %v", cpID, cp)
		}
		time.Sleep(300 * time.Millisecond)
		cp = k.dict("checkpoint-show", karborProvider, cpID)
	}
	if cp["status"] != "available" {
		t.Fatalf("checkpoint %s ended %q: %v\ndaemon stderr: %s", cpID, cp["status"], cp, clip(a.stderr.String()))
	}
	var graph []struct {
		Resource struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"resource"`
		Status      string `json:"status"`
		BackupID    string `json:"backup_id"`
		Size        int64  `json:"size"`
		ReadBytes   int64  `json:"read_bytes"`
		StoredBytes int64  `json:"stored_bytes"`
	}
	if err := json.Unmarshal([]byte(cp["resource_graph"]), &graph); err != nil {
		t.Fatalf("checkpoint-show resource_graph is not JSON: %v\n%s", err, cp["resource_graph"])
	}
	wantSize := map[string]int64{idA: sizeA, idB: sizeB}
	if len(graph) != 2 {
		t.Fatalf("resource_graph has %d resources, want 2: %s", len(graph), cp["resource_graph"])
	}
	for _, g := range graph {
		if g.Status != "available" || g.BackupID == "" || g.Size != wantSize[g.Resource.ID] || g.ReadBytes <= 0 || g.StoredBytes <= 0 {
			t.Errorf("resource_graph entry %+v: want available, a backup, size %d and non-zero read/stored bytes", g, wantSize[g.Resource.ID])
		}
	}
	m := regexp.MustCompile(`'size_bytes': (\d+)`).FindStringSubmatch(cp["extra_info"])
	if m == nil || m[1] != strconv.FormatInt(sizeA+sizeB, 10) {
		t.Errorf("checkpoint extra_info %q: want size_bytes %d", cp["extra_info"], sizeA+sizeB)
	}
	if m := regexp.MustCompile(`'stored_bytes': (\d+)`).FindStringSubmatch(cp["extra_info"]); m == nil || m[1] == "0" {
		t.Errorf("checkpoint extra_info %q: want non-zero stored_bytes", cp["extra_info"])
	}

	// Restore each file to a new path and compare.
	outA, outB := filepath.Join(dir, "restores", "a.out"), filepath.Join(dir, "restores", "b.out")
	rs := k.dict("restore-create", karborProvider, cpID,
		"--parameters", fmt.Sprintf("resource_type=%s,resource_id=%s,restore_path=%s", fileType, idA, outA),
		"--parameters", fmt.Sprintf("resource_type=%s,resource_id=%s,restore_path=%s", fileType, idB, outB))
	rsID := rs["id"]
	deadline = time.Now().Add(60 * time.Second)
	for rs["status"] == "in_progress" {
		if time.Now().After(deadline) {
			t.Fatalf("restore %s still in progress after 60s: %v", rsID, rs)
		}
		time.Sleep(300 * time.Millisecond)
		rs = k.dict("restore-show", rsID)
	}
	if rs["status"] != "success" {
		t.Fatalf("restore %s ended %q: %v", rsID, rs["status"], rs)
	}
	for from, to := range map[string]string{fileA: outA, fileB: outB} {
		if got, want := fileHash(t, to), fileHash(t, from); got != want {
			t.Errorf("restored %s differs from %s", to, from)
		}
	}
	if rows := k.table("restore-list"); !slices.Contains(column(rows, "Id"), rsID) {
		t.Errorf("restore-list lacks %s: %v", rsID, rows)
	}

	// List, then delete the checkpoint.
	cps := k.table("checkpoint-list", karborProvider)
	if len(cps) != 1 || cps[0]["Id"] != cpID || cps[0]["Status"] != "available" || !strings.Contains(cps[0]["Protection plan"], planID) {
		t.Fatalf("checkpoint-list: %v, want just %s available of plan %s", cps, cpID, planID)
	}
	k.must("checkpoint-delete", karborProvider, cpID)
	if r := k.run("checkpoint-show", karborProvider, cpID); r.code == 0 {
		t.Fatalf("checkpoint-show of a deleted checkpoint succeeded:\n%s", r)
	}
	if cps := k.table("checkpoint-list", karborProvider); len(cps) != 0 {
		t.Fatalf("checkpoint-list after delete: %v", cps)
	}

	// A trigger every 2 s and a scheduled protection keeping 2 checkpoints.
	trig := k.dict("trigger-create", "every-2s", "time", "format=calendar,pattern=RRULE:FREQ=SECONDLY;INTERVAL=2")
	trigID := trig["id"]
	if !uuid.MatchString(trigID) || trig["type"] != "time" {
		t.Fatalf("trigger-create printed %v", trig)
	}
	op := k.dict("scheduledoperation-create", "keep-two", "protect", trigID,
		fmt.Sprintf("plan_id=%s,provider_id=%s,max_backups=2", planID, karborProvider))
	opID := op["id"]
	if !uuid.MatchString(opID) || op["trigger_id"] != trigID {
		t.Fatalf("scheduledoperation-create printed %v", op)
	}
	if rows := k.table("scheduledoperation-list"); !slices.Contains(column(rows, "Id"), opID) {
		t.Errorf("scheduledoperation-list lacks %s: %v", opID, rows)
	}
	if rows := k.table("trigger-list"); !slices.Contains(column(rows, "Id"), trigID) {
		t.Errorf("trigger-list lacks %s: %v", trigID, rows)
	}

	// Wait for at least four scheduled protections to succeed.
	const firings = 4
	var logs []map[string]string
	deadline = time.Now().Add(60 * time.Second)
	for {
		logs = k.table("operationlog-list")
		n := 0
		for _, l := range logs {
			if l["Operation Type"] == "protect" && l["Status"] == "success" && l["Plan Id"] == planID && l["Checkpoint id"] != cpID {
				n++
			}
		}
		if n >= firings {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scheduled protections succeeded within 60s, want %d\noperation logs: %v\ndaemon stderr: %s", n, firings, logs, clip(a.stderr.String()))
		}
		time.Sleep(time.Second)
	}
	// Retention runs in the same step that makes a checkpoint available,
	// so no more than two of the plan's are ever available.
	cps = k.table("checkpoint-list", karborProvider, "--plan_id", planID)
	avail := 0
	for _, c := range cps {
		switch c["Status"] {
		case "available":
			avail++
		case "protecting":
		default:
			t.Errorf("scheduled checkpoint %s is %s", c["Id"], c["Status"])
		}
	}
	if avail < 1 || avail > 2 {
		t.Errorf("%d checkpoints of plan %s available after %d+ firings with max_backups=2: %v", avail, planID, firings, cps)
	}
	deletes := 0
	for _, l := range logs {
		if l["Operation Type"] == "delete" && l["Status"] == "success" && l["Checkpoint id"] != cpID {
			deletes++
		}
	}
	if deletes == 0 {
		t.Errorf("retention deleted no checkpoint after %d+ firings: %v", firings, logs)
	}
	if len(logs) == 0 {
		t.Error("operationlog-list is empty")
	}

	// Stop the schedule; the trigger can go once nothing uses it.
	k.must("scheduledoperation-delete", opID)
	k.must("trigger-delete", trigID)
	if rows := k.table("trigger-list"); len(rows) != 0 {
		t.Errorf("trigger-list after delete: %v", rows)
	}
	a.stop()
}

// TestKarborTenantIsolation checks that a project never sees or touches
// another's plans, checkpoints, restores, verifications, triggers,
// scheduled operations, operation logs or quotas.
func TestKarborTenantIsolation(t *testing.T) {
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(vols, "disk.img")
	writeRandomFile(t, src, 3, 2*mib+5)
	a := startAppliance(t, dir, nil)
	const A, B = "project-a", "project-b"
	P := "/providers/" + karborProvider

	// Project A creates one of everything.
	plan := a.createFilePlan(A, "a-plan", src)
	cp := a.createCheckpoint(A, plan)
	if c := a.waitCheckpoint(A, cp); c["status"] != "available" {
		t.Fatalf("checkpoint %s: %v", cp, c)
	}
	srcID := fileInstanceID(t, a, A, src)
	out := filepath.Join(dir, "restores", "a.out")
	rs := a.restoreFiles(A, cp, map[string]string{srcID: out})["id"].(string)
	if fileHash(t, out) != fileHash(t, src) {
		t.Fatal("restore differs from its source")
	}
	ver := a.ok(202, A, "POST", "/verifications", map[string]any{"verification": map[string]any{
		"provider_id": karborProvider, "checkpoint_id": cp}}).obj(t, "verification")["id"].(string)
	if v := a.waitStatus(A, "/verifications/"+ver, "verification", time.Minute, "in_progress"); v["status"] != "success" {
		t.Fatalf("verification %s: %v", ver, v)
	}
	trig := a.ok(200, A, "POST", "/triggers", map[string]any{"trigger_info": map[string]any{
		"name": "weekly", "type": "time", "properties": map[string]any{"pattern": "0 3 * * 0", "format": "crontab"}}}).obj(t, "trigger_info")["id"].(string)
	op := a.ok(200, A, "POST", "/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
		"name": "weekly-protect", "operation_type": "protect", "trigger_id": trig,
		"operation_definition": map[string]string{"plan_id": plan, "provider_id": karborProvider, "max_backups": "3"}}}).obj(t, "scheduled_operation")["id"].(string)
	a.ok(200, A, "PUT", "/quotas/"+A, map[string]any{"quota": map[string]any{"plans": 7}})
	logs := a.ok(200, A, "GET", "/operation_logs", nil).list(t, "operation_logs")
	if len(logs) == 0 {
		t.Fatal("project A has no operation logs")
	}
	logID := logs[0]["id"].(string)
	aIDs := []string{plan, cp, rs, ver, trig, op, logID}

	// Project B's lists are empty and mention none of A's objects.
	for path, key := range map[string]string{"/plans": "plans", P + "/checkpoints": "checkpoints", "/restores": "restores",
		"/verifications": "verifications", "/triggers": "triggers", "/scheduled_operations": "operations",
		"/operation_logs": "operation_logs"} {
		r := a.ok(200, B, "GET", path, nil)
		if l := r.list(t, key); len(l) != 0 {
			t.Errorf("project B lists A's objects: %s", r)
		}
		for _, id := range aIDs {
			if strings.Contains(string(r.body), id) {
				t.Errorf("project B's %s mentions A's %s: %s", path, id, r)
			}
		}
	}
	// Checkpoint list filters cannot reach across either.
	if l := a.ok(200, B, "GET", P+"/checkpoints?plan_id="+plan+"&project_id="+A+"&all_tenants=1", nil).list(t, "checkpoints"); len(l) != 0 {
		t.Errorf("project B lists A's checkpoints with filters: %v", l)
	}

	// Show, update and delete of A's objects from B: 404 each.
	for _, path := range []string{"/plans/" + plan, P + "/checkpoints/" + cp, "/restores/" + rs, "/verifications/" + ver,
		"/triggers/" + trig, "/scheduled_operations/" + op, "/operation_logs/" + logID, "/quotas/" + A} {
		checkFault(t, a.call(B, "GET", path, nil), 404)
	}
	checkFault(t, a.call(B, "PUT", "/plans/"+plan, map[string]any{"plan": map[string]any{"name": "stolen"}}), 404)
	checkFault(t, a.call(B, "PUT", "/triggers/"+trig, map[string]any{"trigger_info": map[string]any{"name": "stolen"}}), 404)
	checkFault(t, a.call(B, "PUT", "/quotas/"+A, map[string]any{"quota": map[string]any{"plans": 0}}), 404)
	for _, path := range []string{"/scheduled_operations/" + op, "/triggers/" + trig, P + "/checkpoints/" + cp, "/plans/" + plan} {
		checkFault(t, a.call(B, "DELETE", path, nil), 404)
	}
	// Nor can B use A's objects in its own requests.
	checkFault(t, a.call(B, "POST", P+"/checkpoints", map[string]any{"checkpoint": map[string]any{"plan_id": plan}}), 404)
	checkFault(t, a.call(B, "POST", "/restores", map[string]any{"restore": map[string]any{
		"provider_id": karborProvider, "checkpoint_id": cp, "parameters": map[string]any{
			fileType: map[string]any{"restore_path": filepath.Join(dir, "restores", "b.out")}}}}), 404)
	checkFault(t, a.call(B, "POST", "/verifications", map[string]any{"verification": map[string]any{
		"provider_id": karborProvider, "checkpoint_id": cp}}), 404)
	checkFault(t, a.call(B, "POST", "/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
		"name": "x", "operation_type": "protect", "trigger_id": trig,
		"operation_definition": map[string]string{"plan_id": plan, "provider_id": karborProvider}}}), 404)
	if _, err := os.Stat(filepath.Join(dir, "restores", "b.out")); err == nil {
		t.Error("project B restored A's checkpoint")
	}
	// Quotas are per project: B has the default, not A's 7.
	if q := a.ok(200, B, "GET", "/quotas/"+B, nil).obj(t, "quota"); q["plans"] != float64(50) {
		t.Errorf("project B's quota %v, want the default 50 plans", q)
	}
	if q := a.ok(200, A, "GET", "/quotas/"+A, nil).obj(t, "quota"); q["plans"] != float64(7) {
		t.Errorf("project A's quota %v, want 7 plans", q)
	}

	// A's objects are intact.
	if p := a.ok(200, A, "GET", "/plans/"+plan, nil).obj(t, "plan"); p["name"] != "a-plan" {
		t.Errorf("A's plan changed: %v", p)
	}
	if tr := a.ok(200, A, "GET", "/triggers/"+trig, nil).obj(t, "trigger_info"); tr["name"] != "weekly" {
		t.Errorf("A's trigger changed: %v", tr)
	}
	for _, path := range []string{P + "/checkpoints/" + cp, "/restores/" + rs, "/verifications/" + ver,
		"/scheduled_operations/" + op, "/operation_logs/" + logID} {
		a.ok(200, A, "GET", path, nil)
	}

	// The CLI sees the same split, where it is installed.
	if bin := lookKarbor(); bin != "" {
		ka := karborCLI{t: t, bin: bin, a: a, project: A}
		kb := karborCLI{t: t, bin: bin, a: a, project: B}
		if ids := column(ka.table("plan-list"), "Id"); !slices.Contains(ids, plan) {
			t.Errorf("karbor plan-list of A lacks %s: %v", plan, ids)
		}
		if rows := kb.table("plan-list"); len(rows) != 0 {
			t.Errorf("karbor plan-list of B: %v", rows)
		}
		if r := kb.run("plan-show", plan); r.code == 0 {
			t.Errorf("karbor plan-show of A's plan as B succeeded:\n%s", r)
		}
	}
	a.stop()
}

// TestKarborBadInput sends malformed requests: each gets a 4xx fault with
// a message, and the daemon stays healthy.
func TestKarborBadInput(t *testing.T) {
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(vols, "disk.img")
	writeRandomFile(t, src, 4, 256*kib)
	a := startAppliance(t, dir, map[string]any{"min_interval": "1s"})
	const pr = "demo"
	srcID := fileInstanceID(t, a, pr, src)
	plan := a.createFilePlan(pr, "good", src)
	res := fmt.Sprintf(`[{"id":%q,"type":%q,"name":%q}]`, srcID, fileType, src)
	big := `{"plan":{"name":"big","provider_id":"` + karborProvider + `","resources":` + res +
		`,"description":"` + strings.Repeat("x", 2<<20) + `"}}`
	trigger := func(props string) string {
		return `{"trigger_info":{"name":"t","type":"time","properties":` + props + `}}`
	}
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed JSON", "POST", "/v1/demo/plans", `{"plan": {"name": "x",`, 400},
		{"not an object", "POST", "/v1/demo/plans", `[1, 2]`, 400},
		{"empty body", "POST", "/v1/demo/plans", ``, 400},
		{"trailing data", "POST", "/v1/demo/plans", `{"plan":{"name":"x","provider_id":"` + karborProvider + `","resources":` + res + `}} {}`, 400},
		{"unknown field", "POST", "/v1/demo/plans", `{"plan":{"name":"x","provider_id":"` + karborProvider + `","resources":` + res + `,"bogus":1}}`, 400},
		{"unknown envelope", "POST", "/v1/demo/plans", `{"plans":{"name":"x"}}`, 400},
		{"wrong field type", "POST", "/v1/demo/plans", `{"plan":{"name":5,"provider_id":"` + karborProvider + `","resources":` + res + `}}`, 400},
		{"bad provider UUID", "POST", "/v1/demo/plans", `{"plan":{"name":"x","provider_id":"nope","resources":` + res + `}}`, 400},
		{"unknown resource", "POST", "/v1/demo/plans", `{"plan":{"name":"x","provider_id":"` + karborProvider + `","resources":[{"id":"00000000-0000-4000-8000-000000000000","type":"` + fileType + `","name":"x"}]}}`, 400},
		{"oversized body", "POST", "/v1/demo/plans", big, 413},
		{"oversized update", "PUT", "/v1/demo/plans/" + plan, big, 413},
		{"bad UUID in path (show)", "GET", "/v1/demo/plans/not-a-uuid", "", 400},
		{"bad UUID in path (update)", "PUT", "/v1/demo/plans/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", `{"plan":{"name":"y"}}`, 400},
		{"bad UUID in path (checkpoint)", "GET", "/v1/demo/providers/" + karborProvider + "/checkpoints/1234", "", 400},
		{"bad provider UUID in path", "GET", "/v1/demo/providers/xyz/checkpoints", "", 400},
		{"bad UUID in path (delete)", "DELETE", "/v1/demo/triggers/12345678-1234-1234-1234-12345678901g", "", 400},
		{"bad project", "GET", "/v1/bad$project/plans", "", 400},
		{"unknown plan", "GET", "/v1/demo/plans/00000000-0000-4000-8000-000000000000", "", 404},
		{"unknown route", "GET", "/v1/demo/nothing-here", "", 404},
		{"checkpoint of bad plan id", "POST", "/v1/demo/providers/" + karborProvider + "/checkpoints", `{"checkpoint":{"plan_id":"abc"}}`, 400},
		{"bad cron: range", "POST", "/v1/demo/triggers", trigger(`{"pattern":"61 * * * *","format":"crontab"}`), 400},
		{"bad cron: fields", "POST", "/v1/demo/triggers", trigger(`{"pattern":"* * *"}`), 400},
		{"bad cron: junk", "POST", "/v1/demo/triggers", trigger(`{"pattern":"every day at noon","format":"crontab"}`), 400},
		{"bad cron: step", "POST", "/v1/demo/triggers", trigger(`{"pattern":"*/0 * * * *"}`), 400},
		{"cron never fires", "POST", "/v1/demo/triggers", trigger(`{"pattern":"0 0 30 2 *"}`), 400},
		{"bad calendar", "POST", "/v1/demo/triggers", trigger(`{"pattern":"RRULE:FREQ=FORTNIGHTLY","format":"calendar"}`), 400},
		{"bad format", "POST", "/v1/demo/triggers", trigger(`{"pattern":"* * * * *","format":"iso"}`), 400},
		{"nested property", "POST", "/v1/demo/triggers", trigger(`{"pattern":{"a":1}}`), 400},
		{"unknown property", "POST", "/v1/demo/triggers", trigger(`{"pattern":"0 3 * * *","colour":"blue"}`), 400},
		{"bad window", "POST", "/v1/demo/triggers", trigger(`{"pattern":"0 3 * * *","window":"-5"}`), 400},
		{"bad trigger type", "POST", "/v1/demo/triggers", `{"trigger_info":{"name":"t","type":"event","properties":{"pattern":"0 3 * * *"}}}`, 400},
		{"bad quota", "PUT", "/v1/demo/quotas/demo", `{"quota":{"plans":"many"}}`, 400},
		{"negative quota", "PUT", "/v1/demo/quotas/demo", `{"quota":{"plans":-1}}`, 400},
		{"bad sort", "GET", "/v1/demo/plans?sort=name:sideways", "", 400},
		{"bad limit", "GET", "/v1/demo/plans?limit=-3", "", 400},
		{"bad marker", "GET", "/v1/demo/plans?marker=00000000-0000-4000-8000-000000000000", "", 400},
	}
	for _, c := range cases {
		var body []byte
		if c.body != "" || c.method == "POST" || c.method == "PUT" {
			body = []byte(c.body)
		}
		r := a.raw(c.method, c.path, body)
		if r.code < 400 || r.code > 499 {
			t.Errorf("%s: want a 4xx: %s", c.name, r)
			continue
		}
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) { checkFault(t, r, c.want) })
	}
	// A bad scheduled operation: unknown definition key, bad retention.
	trig := a.ok(200, pr, "POST", "/triggers", map[string]any{"trigger_info": map[string]any{
		"name": "t", "type": "time", "properties": map[string]any{"pattern": "0 3 * * *"}}}).obj(t, "trigger_info")["id"].(string)
	for _, def := range []map[string]string{
		{"plan_id": plan, "provider_id": karborProvider, "max_backups": "two"},
		{"plan_id": plan, "provider_id": karborProvider, "colour": "blue"},
	} {
		checkFault(t, a.call(pr, "POST", "/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
			"name": "x", "operation_type": "protect", "trigger_id": trig, "operation_definition": def}}), 400)
	}
	checkFault(t, a.call(pr, "POST", "/scheduled_operations", map[string]any{"scheduled_operation": map[string]any{
		"name": "x", "operation_type": "explode", "trigger_id": trig,
		"operation_definition": map[string]string{"plan_id": plan, "provider_id": karborProvider}}}), 400)
	// The CLI reports a bad pattern as an error, too.
	if bin := lookKarbor(); bin != "" {
		k := karborCLI{t: t, bin: bin, a: a, project: pr}
		if r := k.run("trigger-create", "bad", "time", "pattern=61 * * * *"); r.code == 0 || !strings.Contains(r.stderr+r.stdout, "61") {
			t.Errorf("karbor trigger-create with a bad pattern:\n%s", r)
		}
	}
	// Nothing was created by the bad requests, and the daemon is healthy.
	if l := a.ok(200, pr, "GET", "/plans", nil).list(t, "plans"); len(l) != 1 {
		t.Errorf("%d plans after bad requests, want 1: %v", len(l), l)
	}
	if l := a.ok(200, pr, "GET", "/triggers", nil).list(t, "triggers"); len(l) != 1 {
		t.Errorf("%d triggers after bad requests, want 1: %v", len(l), l)
	}
	if r := a.raw("GET", "/healthz", nil); r.code != 200 {
		t.Errorf("/healthz after bad input: %s", r)
	}
	a.stop()
}
