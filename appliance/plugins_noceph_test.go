//go:build !ceph

package appliance

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestOpenRBDWithoutCeph: rbd_pools in a build without librbd stops the
// appliance at start with a message that says why.
func TestOpenRBDWithoutCeph(t *testing.T) {
	_, err := Open(context.Background(), Config{DataDir: t.TempDir(), RBDPools: []string{"volumes"}}, Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "built without Ceph support") {
		t.Fatalf("Open with rbd_pools: %v, want an error saying the build has no Ceph support", err)
	}
}

// TestOpenCloudWithoutCeph: a cloud section in a build without librbd
// stops the appliance at start: the Cinder plugin reads through librbd.
func TestOpenCloudWithoutCeph(t *testing.T) {
	_, err := Open(context.Background(), Config{DataDir: t.TempDir(), Cloud: &CloudConfig{Cloud: "devstack"}}, Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "built without Ceph support") {
		t.Fatalf("Open with cloud: %v, want an error saying the build has no Ceph support", err)
	}
}
