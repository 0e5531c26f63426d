package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

func TestSortAttachments(t *testing.T) {
	for _, tc := range []struct {
		name, root string
		devices    []string
		want       []string
	}{
		{"root first", "/dev/vdb", []string{"/dev/vda", "/dev/vdb", "/dev/vdc"}, []string{"/dev/vdb", "/dev/vda", "/dev/vdc"}},
		{"by name", "/dev/sda", []string{"/dev/sdc", "/dev/sda", "/dev/sdb"}, []string{"/dev/sda", "/dev/sdb", "/dev/sdc"}},
		{"shorter first", "", []string{"/dev/vdaa", "/dev/vdz"}, []string{"/dev/vdz", "/dev/vdaa"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := make([]VolumeAttachment, len(tc.devices))
			for i, d := range tc.devices {
				as[i].Device = d
			}
			SortAttachments(as, tc.root)
			got := make([]string, len(as))
			for i := range as {
				got[i] = as[i].Device
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeNova serves handler as the compute endpoint.
func fakeNova(t *testing.T, handler http.HandlerFunc, wait time.Duration) *Nova {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	pc := &gophercloud.ProviderClient{TokenID: "token"}
	pc.RetryFunc = RetryPolicy{Max: 3, Base: time.Millisecond, Cap: 2 * time.Millisecond}.retryFunc(nil)
	sc := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: srv.URL + "/v2.1/", ResourceBase: srv.URL + "/v2.1/", Type: "compute"}
	return &Nova{sc: sc, w: newCinder(&gophercloud.ServiceClient{}, Config{WaitTimeout: wait, Poll: time.Millisecond})}
}

const serverJSON = `{"server": {"id": "s1", "name": "web", "tenant_id": "p1", "status": %q, "key_name": "k",
 "OS-EXT-AZ:availability_zone": "az1", "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda", "image": "",
 "flavor": {"original_name": "m1", "vcpus": 2, "ram": 512, "disk": 1},
 "security_groups": [{"name": "default"}], "metadata": {"a": "b"},
 "addresses": {"net": [{"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"}]},
 "fault": {"message": "no valid host"}}}`

func TestNovaServerDecodeAndWait(t *testing.T) {
	var polls atomic.Int32
	n := fakeNova(t, func(w http.ResponseWriter, r *http.Request) {
		status := "BUILD"
		if polls.Add(1) > 2 {
			status = "ERROR"
		}
		fmt.Fprintf(w, serverJSON, status)
	}, time.Minute)
	s, err := n.Server(context.Background(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.TenantID != "p1" || s.Flavor != (ServerFlavor{Name: "m1", VCPUs: 2, RAM: 512, Disk: 1}) || s.AvailabilityZone != "az1" ||
		s.RootDevice != "/dev/vda" || s.ImageID() != "" || s.KeyName != "k" || s.Addresses["net"][0].Addr != "10.0.0.5" ||
		len(s.SecurityGroups) != 1 || s.SecurityGroups[0].Name != "default" {
		t.Errorf("decoded server %+v", s)
	}
	_, err = n.WaitServer(context.Background(), "s1", "ACTIVE")
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "no valid host") || !strings.Contains(err.Error(), "server s1") {
		t.Errorf("wait for a server that went to ERROR: %v, want ErrFailed naming the server and its fault", err)
	}
}

func TestNovaWaitTimesOut(t *testing.T) {
	n := fakeNova(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, serverJSON, "BUILD") }, 20*time.Millisecond)
	_, err := n.WaitServer(context.Background(), "s1", "ACTIVE")
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "last status build") {
		t.Errorf("wait: %v, want ErrTimeout saying what it waited for and the last status", err)
	}
}
