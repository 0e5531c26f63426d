// Package ostest gives tests the throwaway OpenStack cloud that
// scripts/openstack.sh starts ($OPENSTACK_ENV names its openstack.env).
package ostest

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"cairn/internal/testenv"
)

const how = "start one with scripts/openstack.sh start DIR (on a Ceph cluster: CEPH_CONF) and export OPENSTACK_ENV=DIR/openstack.env (make test does both)"

// Env reads the cloud's openstack.env, sets its variables (OS_* for the
// admin, CEPH_CONF) for the test and returns them. Without a cloud the
// test skips, or fails under CAIRN_REQUIRE_ALL=1.
func Env(t testing.TB) map[string]string {
	t.Helper()
	path := testenv.Lookup(t, "OPENSTACK_ENV", "an OpenStack test cloud", how)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("OPENSTACK_ENV: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "), "=")
		if ok && k != "" && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("OPENSTACK_ENV %s: %v", path, err)
	}
	for _, k := range []string{"OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "CEPH_CONF"} {
		if env[k] == "" {
			t.Fatalf("OPENSTACK_ENV %s has no %s", path, k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return env
}
