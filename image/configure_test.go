package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn/appliance"
)

// metadataServer serves meta_data.json and, if not empty, userData.
func metadataServer(t *testing.T, userData string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/openstack/latest/meta_data.json":
			_, _ = w.Write([]byte(`{"uuid": "` + testServer + `"}`))
		case "/openstack/latest/user_data":
			if userData != "" {
				_, _ = w.Write([]byte(userData))
				return
			}
			http.NotFound(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/openstack/latest"
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatal("Configure tests need root (chown), and CAIRN_REQUIRE_ALL=1")
		}
		t.Skip("Configure chowns its files: needs root")
	}
}

// TestConfigure: from the metadata service (no drive on a test machine)
// to a cairn.json that the appliance accepts, the data directory owned by
// the daemon's user.
func TestConfigure(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	etc, data := filepath.Join(dir, "etc"), filepath.Join(dir, "data")
	url := metadataServer(t, `{"config": {"data_dir": "`+data+`"}, "keystone_password": "pw"}`)
	p, err := Configure(context.Background(), Options{EtcDir: etc, RunDir: filepath.Join(dir, "run"), MetadataURL: url, UID: 4321, GID: 4321})
	if err != nil {
		t.Fatal(err)
	}
	c, err := appliance.LoadConfig(filepath.Join(etc, ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerID != testServer || c.DataDir != data || c.Keystone.PasswordFile != filepath.Join(etc, "keystone-password") || p.Config.ServerID != testServer {
		t.Fatalf("cairn.json: %+v", c)
	}
	fi, err := os.Stat(data)
	if err != nil || statOwner(fi) != [2]int{4321, 4321} {
		t.Fatalf("data directory: %v, owner %v", err, statOwner(fi))
	}
}

// TestConfigureDegraded: without any source, or with user data cairn
// cannot use, Configure still writes a cairn.json, holding the reason.
func TestConfigureDegraded(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name, url, want string
		is              error
	}{
		{"no source", "http://127.0.0.1:1/openstack/latest", "no config drive", ErrNoSeed},
		{"no user data", "", "no user data", ErrUserData},
		{"bad user data", `{"config": {"workers": "two"}}`, "workers", ErrUserData},
		{"missing data volume", `{"data_volume": "0e3c1d7a-6a52-4a8e-b1f4-79d0c2a1e5aa"}`, "did not appear", ErrDataVolume},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			etc := filepath.Join(dir, "etc")
			url := tc.url
			if !strings.HasPrefix(url, "http") {
				url = metadataServer(t, tc.url)
			}
			o := Options{EtcDir: etc, RunDir: filepath.Join(dir, "run"), DevDir: filepath.Join(dir, "dev"), MetadataURL: url,
				MetadataWait: time.Millisecond, DataVolumeWait: time.Millisecond}
			_, err := Configure(context.Background(), o)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err %v, want %v", err, tc.is)
			}
			c, lerr := appliance.LoadConfig(filepath.Join(etc, ConfigName))
			if lerr != nil {
				t.Fatal(lerr)
			}
			if !strings.Contains(c.ConfigError, tc.want) || c.Listen != Listen {
				t.Fatalf("degraded cairn.json %+v, want config_error containing %q", c, tc.want)
			}
		})
	}
}
