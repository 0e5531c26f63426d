package openstack

import (
	"context"
	"errors"
	"testing"
	"time"

	"cairn/internal/openstack/ostest"
)

// realCloud returns the admin's cloud of the test cloud.
func realCloud(t *testing.T) *Cloud {
	t.Helper()
	ostest.Env(t)
	c, err := New(Config{FromEnv: true, WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRealCinderVolumeSnapshotAttachment(t *testing.T) {
	c := realCloud(t)
	ctx := context.Background()
	cin, err := c.Cinder(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := cin.CreateVolume(ctx, VolumeSpec{Name: "cairn-client-test", SizeGiB: 1, Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cin.DeleteVolume(context.Background(), v.ID); err != nil {
			t.Error(err)
		}
	})
	s, err := cin.CreateSnapshot(ctx, v.ID, "cairn-client-test-snap", "test", map[string]string{"cairn": "test"})
	if err != nil {
		t.Fatal(err)
	}
	if ss, err := cin.Snapshots(ctx, v.ID); err != nil || len(ss) != 1 || ss[0].Metadata["cairn"] != "test" {
		t.Errorf("snapshots of %s: %+v, %v", v.ID, ss, err)
	}
	a, err := cin.Attach(ctx, v.ID, Connector(ConnectorHost()), "ro")
	if err != nil {
		t.Fatal(err)
	}
	name, driver, ok := a.RBDImage()
	if !ok || name != "volumes/volume-"+v.ID {
		t.Errorf("attachment connection_info: name %q driver %q, want volumes/volume-%s on rbd", name, driver, v.ID)
	}
	as, err := cin.Attachments(ctx, v.ID)
	if err != nil || len(as) != 1 || as[0].ID != a.ID || as[0].Instance != "" {
		t.Errorf("attachments of %s: %+v, %v", v.ID, as, err)
	}
	if err := cin.Detach(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cin.WaitVolume(ctx, v.ID, "available"); err != nil {
		t.Fatal(err)
	}
	if err := cin.DeleteSnapshot(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cin.Volume(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing volume: %v, want ErrNotFound", err)
	}
}
