package image

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadConfigDrive(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"openstack/latest/meta_data.json": `{"uuid": "` + testServer + `", "name": "cairn"}`,
		"openstack/latest/user_data":      `{"config": {}}`,
	})
	s, err := ReadConfigDrive(dir)
	if err != nil || s.ServerID != testServer || string(s.UserData) != `{"config": {}}` || s.Source != "config-2" {
		t.Fatalf("ReadConfigDrive: %+v, %v", s, err)
	}
	// No user data is not an error here: NewPlan says what is missing.
	dir = writeTree(t, map[string]string{"openstack/latest/meta_data.json": `{"uuid": "u"}`})
	if s, err := ReadConfigDrive(dir); err != nil || s.UserData != nil {
		t.Fatalf("without user_data: %+v, %v", s, err)
	}
	for name, files := range map[string]map[string]string{
		"no meta_data.json": {"openstack/latest/user_data": "{}"},
		"no uuid":           {"openstack/latest/meta_data.json": `{"name": "x"}`},
		"bad JSON":          {"openstack/latest/meta_data.json": `{`},
		"huge user data":    {"openstack/latest/meta_data.json": `{"uuid": "u"}`, "openstack/latest/user_data": strings.Repeat("x", maxSeedFile+1)},
	} {
		if _, err := ReadConfigDrive(writeTree(t, files)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReadNoCloud(t *testing.T) {
	dir := writeTree(t, map[string]string{"meta-data": "instance-id: " + testServer + "\nlocal-hostname: cairn\n", "user-data": "{}"})
	s, err := ReadNoCloud(dir)
	if err != nil || s.ServerID != testServer || string(s.UserData) != "{}" || s.Source != "cidata" {
		t.Fatalf("ReadNoCloud: %+v, %v", s, err)
	}
	if _, err := ReadNoCloud(writeTree(t, map[string]string{"meta-data": "instance-id: [\n"})); err == nil {
		t.Error("bad YAML: no error")
	}
}

func TestReadMetadataService(t *testing.T) {
	userData := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/openstack/latest/meta_data.json":
			_, _ = w.Write([]byte(`{"uuid": "` + testServer + `"}`))
		case r.URL.Path == "/openstack/latest/user_data" && userData:
			_, _ = w.Write([]byte(`{"nbd_project": "p"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	s, err := ReadMetadataService(context.Background(), srv.Client(), srv.URL+"/openstack/latest")
	if err != nil || s.ServerID != testServer || string(s.UserData) != `{"nbd_project": "p"}` {
		t.Fatalf("ReadMetadataService: %+v, %v", s, err)
	}
	userData = false
	if s, err := ReadMetadataService(context.Background(), srv.Client(), srv.URL+"/openstack/latest"); err != nil || s.UserData != nil {
		t.Fatalf("without user data: %+v, %v", s, err)
	}
	if _, err := ReadMetadataService(context.Background(), srv.Client(), srv.URL+"/nothing"); err == nil {
		t.Fatal("no meta_data.json: no error")
	}
}

func TestSerialPath(t *testing.T) {
	if got := SerialPath("/dev", "0e3c1d7a-6a52-4a8e-b1f4-79d0c2a1e5aa"); got != "/dev/disk/by-id/virtio-0e3c1d7a-6a52-4a8e-b" {
		t.Fatalf("SerialPath: %s", got)
	}
}
