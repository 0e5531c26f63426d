package image

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn/appliance"
)

const testServer = "5b8f5a4e-2c43-4d0c-9d4e-0c1a7e6f3b21"

func seedOf(ud string) Seed {
	return Seed{Source: "config-2", ServerID: testServer, UserData: []byte(ud)}
}

func TestNewPlan(t *testing.T) {
	ud := `{"config": {"auth": "keystone", "keystone": {"auth_url": "http://ks:5000/v3", "username": "cairn"},
		"rbd_pools": ["volumes"], "ceph_id": "cairn"},
		"ceph_conf": "[global]\nmon_host = 10.0.0.1\n", "ceph_keyring": "[client.cairn]\nkey = AQB==\n",
		"keystone_password": "ks-secret", "repository_password": "repo-secret",
		"data_volume": "0e3c1d7a-6a52-4a8e-b1f4-79d0c2a1e5aa", "nbd_project": "demo"}`
	p, err := NewPlan(seedOf(ud), "/etc/cairn")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config
	for _, kv := range [][2]string{
		{c.ServerID, testServer}, {c.Listen, Listen}, {c.DataDir, DataDir},
		{c.CephConf, "/etc/cairn/ceph.conf"}, {c.CephKeyring, "/etc/cairn/ceph.keyring"},
		{c.Keystone.PasswordFile, "/etc/cairn/keystone-password"}, {c.PasswordFile, "/etc/cairn/repository-password"},
		{p.DataVolume, "0e3c1d7a-6a52-4a8e-b1f4-79d0c2a1e5aa"}, {p.NBDProject, "demo"},
	} {
		if kv[0] != kv[1] {
			t.Errorf("got %q, want %q", kv[0], kv[1])
		}
	}
	if !c.FileDevices || len(c.FileRoots) != 2 || c.FileRoots[1] != AttachedDir {
		t.Errorf("file_roots %v, file_devices %v: want the attached volumes by default", c.FileRoots, c.FileDevices)
	}
	secret := map[string]bool{}
	for _, f := range p.Files {
		secret[f.Name] = f.Secret
	}
	for name, want := range map[string]bool{"ceph.conf": false, "ceph.keyring": true, "keystone-password": true,
		"repository-password": true, NBDEnvName: false, ConfigName: false} {
		if got, ok := secret[name]; !ok || got != want {
			t.Errorf("file %s: written %v, secret %v; want secret %v", name, ok, got, want)
		}
	}
	last := p.Files[len(p.Files)-1]
	if last.Name != ConfigName {
		t.Fatalf("last file %s, want %s", last.Name, ConfigName)
	}
	for _, s := range []string{"ks-secret", "repo-secret", "AQB=="} {
		if strings.Contains(string(last.Data), s) {
			t.Errorf("%s holds the secret %q", ConfigName, s)
		}
	}
	back, err := appliance.ParseConfig(last.Data)
	if err != nil {
		t.Fatalf("%s does not parse back: %v", ConfigName, err)
	}
	if err := back.Fill(); err != nil {
		t.Fatalf("%s: %v", ConfigName, err)
	}
}

func TestNewPlanRefuses(t *testing.T) {
	for _, tc := range []struct{ name, ud, want string }{
		{"no user data", "", "no user data"},
		{"not JSON", "#cloud-config\n", "not a cairn appliance configuration"},
		{"unknown key", `{"confg": {}}`, `"confg"`},
		{"unknown config key", `{"config": {"listen_addr": "x"}}`, `"listen_addr"`},
		{"two values", `{} {}`, "more than one"},
		{"bad config", `{"config": {"auth": "ldap"}}`, `auth "ldap"`},
		{"secret twice", `{"config": {"ceph_keyring": "/k"}, "ceph_keyring": "x"}`, "both"},
		{"other server", `{"config": {"server_id": "other"}}`, "not this server's UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPlan(seedOf(tc.ud), "/etc/cairn")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrUserData) && !errors.Is(err, appliance.ErrInvalid) {
				t.Errorf("err %v is neither ErrUserData nor appliance.ErrInvalid", err)
			}
		})
	}
}

// TestNewPlanCloudPassword: the Cinder plugin's password lands in a
// secret file that config.cloud names.
func TestNewPlanCloudPassword(t *testing.T) {
	p, err := NewPlan(seedOf(`{"config": {"cloud": {"auth_url": "http://ks:5000/v3", "username": "cairn"}}, "cloud_password": "cl-secret"}`), "/etc/cairn")
	if err != nil {
		t.Fatal(err)
	}
	if p.Config.Cloud == nil || p.Config.Cloud.PasswordFile != "/etc/cairn/cloud-password" || !p.has("cloud-password") {
		t.Fatalf("cloud %+v, files %v", p.Config.Cloud, p.Files)
	}
	if _, err := NewPlan(seedOf(`{"cloud_password": "x"}`), "/etc/cairn"); !errors.Is(err, ErrUserData) {
		t.Fatalf("cloud_password without config.cloud: %v", err)
	}
	if _, err := NewPlan(seedOf(`{"config": {"cloud": {"auth_url": "u", "username": "c", "password_file": "/p"}}, "cloud_password": "x"}`), "/etc/cairn"); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("cloud_password and cloud.password_file: %v", err)
	}
}

// TestPlanWrite checks modes and owners, and that a secret left out of new
// user data is removed.
func TestPlanWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	uid, gid := os.Getuid(), os.Getgid()
	if uid != 0 {
		t.Skip("chown to root needs root")
	}
	p, err := NewPlan(seedOf(`{"repository_password": "pw", "ceph_conf": "[global]\n"}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(dir, 1234, 4321); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][3]int{"repository-password": {0o600, 1234, 4321}, "ceph.conf": {0o640, 0, 4321}, ConfigName: {0o640, 0, 4321}} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		st := statOwner(fi)
		if got := [3]int{int(fi.Mode().Perm()), st[0], st[1]}; got != want {
			t.Errorf("%s: mode/uid/gid %o/%d/%d, want %o/%d/%d", name, got[0], got[1], got[2], want[0], want[1], want[2])
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "repository-password")); string(b) != "pw" {
		t.Errorf("repository-password holds %q", b)
	}
	p2, err := NewPlan(seedOf(`{}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Write(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "repository-password")); !os.IsNotExist(err) {
		t.Errorf("the repository password of the earlier user data is still there: %v", err)
	}
}

// TestDegradedPlan: a degraded cairn.json parses, names the reason and
// makes the appliance refuse to start with it.
func TestDegradedPlan(t *testing.T) {
	p := DegradedPlan(testServer, errors.New("no config drive"))
	c, err := appliance.ParseConfig(p.Files[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerID != testServer || c.ConfigError != "no config drive" || c.Listen != Listen {
		t.Fatalf("degraded config %+v", c)
	}
	if err := c.Fill(); err == nil || !strings.Contains(err.Error(), "no config drive") {
		t.Fatalf("Fill of a degraded config: %v", err)
	}
}

func FuzzParseUserData(f *testing.F) {
	f.Add([]byte(`{"config": {"listen": ":1"}, "ceph_keyring": "k", "data_volume": "v"}`))
	f.Add([]byte(`{"config": 1}`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := NewPlan(Seed{UserData: b, ServerID: "s"}, "/etc/cairn"); err == nil {
			if _, err := ParseUserData(b); err != nil {
				t.Fatalf("NewPlan accepted what ParseUserData refuses: %v", err)
			}
		}
	})
}

func FuzzParseMetaData(f *testing.F) {
	f.Add([]byte(`{"uuid": "x", "name": "y"}`))
	f.Add([]byte(`{"uuid": 3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseMetaData(b)
		if err == nil && id == "" {
			t.Fatal("no error and no UUID")
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
	})
}

func FuzzParseNoCloudMeta(f *testing.F) {
	f.Add([]byte("instance-id: i-1\nlocal-hostname: x\n"))
	f.Add([]byte("instance-id: [\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, err := parseNoCloudMeta(b); err == nil && id == "" {
			t.Fatal("no error and no instance-id")
		}
	})
}
