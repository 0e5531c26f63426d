package appliance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn/plugins/cinder"
)

func TestCloudConfigCheck(t *testing.T) {
	tests := []struct {
		name string
		c    CloudConfig
		ok   bool
	}{
		{"clouds.yaml entry", CloudConfig{Cloud: "prod"}, true},
		{"explicit", CloudConfig{AuthURL: "http://k/v3", Username: "cairn", PasswordFile: "/p"}, true},
		{"no password", CloudConfig{AuthURL: "http://k/v3", Username: "cairn"}, false},
		{"nothing", CloudConfig{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir(), Cloud: &tc.c}
			err := cfg.Fill()
			if tc.ok != (err == nil) {
				t.Fatalf("Fill: %v, want ok %v", err, tc.ok)
			}
			if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cloud needs")) {
				t.Errorf("error %v does not say what the cloud section needs", err)
			}
		})
	}
}

// TestCloudConfigReadPath: the attach path's keys, and its server taken
// from the top-level server_id (the image's first boot writes it).
func TestCloudConfigReadPath(t *testing.T) {
	base := func(c CloudConfig) *CloudConfig { c.Cloud = "prod"; return &c }
	tests := []struct {
		name     string
		serverID string // top-level server_id
		c        *CloudConfig
		server   string // cloud.server_id after Fill; "" with err
		err      string
	}{
		{name: "default", c: base(CloudConfig{})},
		{name: "server from the image", serverID: "vm-1", c: base(CloudConfig{ReadPath: "attach"}), server: "vm-1"},
		{name: "own server wins", serverID: "vm-1", c: base(CloudConfig{ServerID: "vm-2"}), server: "vm-2"},
		{name: "attach without a server", c: base(CloudConfig{ReadPath: "attach"}), err: "cloud.server_id"},
		{name: "direct", c: base(CloudConfig{ReadPath: "direct"})},
		{name: "unknown path", c: base(CloudConfig{ReadPath: "nbd"}), err: "cloud.read_path"},
		{name: "negative wait", c: base(CloudConfig{DeviceWait: Duration(-time.Second)}), err: "cloud.device_wait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir(), ServerID: tc.serverID, Cloud: tc.c}
			err := cfg.Fill()
			if tc.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Fill: %v; want ErrInvalid naming %s", err, tc.err)
				}
				return
			}
			if err != nil || cfg.Cloud.ServerID != tc.server {
				t.Fatalf("Fill: %v, cloud.server_id %q; want %q", err, cfg.Cloud.ServerID, tc.server)
			}
		})
	}
}

func TestCloudConfigPasswordFile(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oc, err := cloudConfig(&CloudConfig{AuthURL: "http://k/v3", Username: "cairn", PasswordFile: pw, WaitTimeout: Duration(time.Minute)})
	if err != nil || oc.Password != "s3cret" || oc.WaitTimeout != time.Minute {
		t.Fatalf("cloudConfig: %+v, %v; want the password without its newline and the wait timeout", oc, err)
	}
	if _, err := cloudConfig(&CloudConfig{AuthURL: "http://k/v3", Username: "cairn", PasswordFile: pw + ".missing"}); err == nil ||
		!strings.Contains(err.Error(), "cloud.password_file") {
		t.Fatalf("missing password file: %v, want an error naming cloud.password_file", err)
	}
}

// TestCloudJournalDurable: entries recorded in the state database are
// there after a reopen (a crash), by project, until forgotten.
func TestCloudJournalDurable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(ctx, Config{DataDir: dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	j := &cloudJournal{a: a}
	e1 := cinder.Entry{ID: "e1", Kind: cinder.KindSnapshot, Project: "p1", VolumeID: "v1", Name: "cairn-x", Created: time.Unix(1, 0).UTC()}
	e2 := cinder.Entry{ID: "e2", Kind: cinder.KindAttachment, Project: "p2", VolumeID: "v2"}
	for _, e := range []cinder.Entry{e1, e2} {
		if err := j.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	a, err = Open(ctx, Config{DataDir: dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	j = &cloudJournal{a: a}
	got, err := j.Entries(ctx, "p1")
	if err != nil || len(got) != 1 || got[0] != e1 {
		t.Fatalf("entries of p1 after a reopen: %+v, %v; want %+v", got, err, e1)
	}
	if err := j.Forget(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	if err := j.Forget(ctx, "e1"); err != nil {
		t.Errorf("forgetting a missing entry: %v", err)
	}
	if got, _ := j.Entries(ctx, "p1"); len(got) != 0 {
		t.Errorf("entries of p1 after Forget: %+v", got)
	}
	if got, _ := j.Entries(ctx, "p2"); len(got) != 1 {
		t.Errorf("entries of p2: %+v, want e2", got)
	}
}

func TestCloudJournalBeforeOpen(t *testing.T) {
	j := &cloudJournal{a: &Appliance{}}
	if err := j.Record(context.Background(), cinder.Entry{ID: "x"}); !errors.Is(err, errNoState) {
		t.Fatalf("Record before Open: %v, want errNoState", err)
	}
}
