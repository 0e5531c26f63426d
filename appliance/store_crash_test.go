package appliance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv makes the test binary a state-store writer for
// TestStateCrash instead of running tests: DB=PATH BASE=N.
const crashChildEnv = "CAIRN_STATE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(crashChildEnv); v != "" {
		os.Exit(crashChild(v))
	}
	os.Exit(m.Run())
}

// crashValue is what version ver of object id holds: long enough to
// span pages, so a torn write would show.
func crashValue(id string, ver int) map[string]string {
	return map[string]string{"id": id, "ver": strconv.Itoa(ver), "pad": strings.Repeat(id+"/"+strconv.Itoa(ver)+";", 150)}
}

// crashChild writes, replaces and deletes objects until it is killed. It
// announces each operation on stdout before it starts ("B op id ver")
// and acknowledges it once the store returned ("A").
func crashChild(arg string) int {
	var db string
	var base int
	if _, err := fmt.Sscanf(arg, "%s %d", &db, &base); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := openBoltStore(db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := os.Stdout // unbuffered: a line written is a line the parent can read
	do := func(op, id string, ver int) {
		fmt.Fprintf(out, "B %s %s %d\n", op, id, ver)
		var err error
		if op == "put" {
			err = s.put("checkpoints", id, crashValue(id, ver))
		} else {
			err = s.delete("checkpoints", id)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(out, "A")
	}
	for i := base; ; i++ {
		id := fmt.Sprintf("obj-%08d", i)
		do("put", id, 1)
		do("put", id, 2)
		if i%3 == 0 {
			do("delete", id, 0)
		}
	}
}

// TestStateCrash kills a writer of the state store with SIGKILL at random
// moments, many times over one database; after each kill the store must
// open and hold every acknowledged change, intact, and the change in
// flight either whole or not at all.
func TestStateCrash(t *testing.T) {
	trials := 40
	if testing.Short() {
		trials = 10
	}
	db := filepath.Join(t.TempDir(), "state.db")
	model := map[string]string{} // id → the version acknowledged ("" absent)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	killedMidOp := 0
	for trial := range trials {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", crashChildEnv, db, trial*100000))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of acknowledgements, a random
		// fraction of a millisecond later: mostly inside a commit.
		killAfter := rng.IntN(60)
		sc := bufio.NewScanner(stdout)
		type op struct {
			kind, id, ver string
		}
		var inflight *op
		acks := 0
		killed := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 4 && f[0] == "B":
				inflight = &op{f[1], f[2], f[3]}
			case len(f) == 1 && f[0] == "A" && inflight != nil:
				if inflight.kind == "put" {
					model[inflight.id] = inflight.ver
				} else {
					delete(model, inflight.id)
				}
				inflight = nil
				acks++
			default:
				t.Fatalf("child said %q", sc.Text())
			}
			if !killed && acks >= killAfter {
				time.Sleep(time.Duration(rng.IntN(1500)) * time.Microsecond)
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("trial %d: child ended with %v, not by SIGKILL:\n%s", trial, err, stderr.String())
		}
		if inflight != nil {
			killedMidOp++
		}

		s, err := openBoltStore(db)
		if err != nil {
			t.Fatalf("trial %d: open after SIGKILL: %v", trial, err)
		}
		got := map[string]string{}
		err = s.loadAll("checkpoints", func(id string, b []byte) error {
			var v map[string]string
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if want := crashValue(id, atoi(v["ver"])); v["pad"] != want["pad"] || v["id"] != id {
				return fmt.Errorf("torn object: %.60q", b)
			}
			got[id] = v["ver"]
			return nil
		})
		_ = s.close()
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		// The operation in flight may or may not have committed.
		if inflight != nil {
			switch v, ok := got[inflight.id]; {
			case inflight.kind == "put" && ok && v == inflight.ver:
				model[inflight.id] = v
			case inflight.kind == "delete" && !ok:
				delete(model, inflight.id)
			}
		}
		for id, v := range model {
			if got[id] != v {
				t.Fatalf("trial %d: acknowledged %s version %s, found %q", trial, id, v, got[id])
			}
		}
		for id := range got {
			if _, ok := model[id]; !ok {
				t.Fatalf("trial %d: %s present, but its deletion was acknowledged (or it was never written)", trial, id)
			}
		}
	}
	t.Logf("%d SIGKILLs, %d in the middle of an operation, %d objects at the end", trials, killedMidOp, len(model))
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
