package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// fakeCinder serves handler as the volumev3 endpoint of a project and
// returns a Cinder client of it with fast retries and polls.
func fakeCinder(t *testing.T, handler http.HandlerFunc, wait time.Duration) *Cinder {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	tm := &Timing{}
	pc := &gophercloud.ProviderClient{TokenID: "token"}
	pc.HTTPClient = http.Client{Transport: timedTransport{base: http.DefaultTransport, t: tm}}
	pc.RetryFunc = RetryPolicy{Max: 3, Base: time.Millisecond, Cap: 2 * time.Millisecond}.retryFunc(tm)
	sc := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: srv.URL + "/v3/p1/", ResourceBase: srv.URL + "/v3/p1/", Type: "volumev3"}
	return newCinder(sc, Config{WaitTimeout: wait, Poll: time.Millisecond, Timing: tm})
}

func volumeJSON(id, status string) string {
	return fmt.Sprintf(`{"volume": {"id": %q, "status": %q, "size": 1, "name": "v"}}`, id, status)
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name     string
		codes    []int // answers before a 200
		wantErr  bool
		wantHits int32
	}{
		{"500 then ok", []int{500}, false, 2},
		{"409 twice then ok", []int{409, 409}, false, 3},
		{"503 past the bound", []int{503, 503, 503, 503, 503}, true, 4},
		{"400 is not retried", []int{400}, true, 1},
		{"404 is not retried", []int{404}, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			c := fakeCinder(t, func(w http.ResponseWriter, r *http.Request) {
				n := hits.Add(1)
				if int(n) <= len(tc.codes) {
					w.WriteHeader(tc.codes[n-1])
					fmt.Fprint(w, `{"error": "busy"}`)
					return
				}
				if got := r.Header.Get("OpenStack-API-Version"); got != "volume "+Microversion {
					t.Errorf("OpenStack-API-Version %q, want volume %s", got, Microversion)
				}
				fmt.Fprint(w, volumeJSON("v1", "available"))
			}, time.Second)
			v, err := c.Volume(context.Background(), "v1")
			if tc.wantErr != (err != nil) {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && v.Status != "available" {
				t.Errorf("status %q", v.Status)
			}
			if hits.Load() != tc.wantHits {
				t.Errorf("%d requests, want %d", hits.Load(), tc.wantHits)
			}
			// Every request is timed; only a retry sleeps.
			if c.timing.Requests() <= 0 || (c.timing.Sleeps() > 0) != (tc.wantHits > 1) {
				t.Errorf("timing: requests %v, sleeps %v after %d requests", c.timing.Requests(), c.timing.Sleeps(), tc.wantHits)
			}
		})
	}
}

func TestRetryNotFoundIsSentinel(t *testing.T) {
	c := fakeCinder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, time.Second)
	if _, err := c.Volume(context.Background(), "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
}

func TestRetryPostTransportErrorNotRepeated(t *testing.T) {
	if retriable(http.MethodPost, "/v3/p/volumes", errors.New("connection reset")) {
		t.Error("a POST that may have been carried out must not be repeated")
	}
	if !retriable(http.MethodGet, "/v3/p/volumes", errors.New("connection reset")) {
		t.Error("a GET should be repeated after a transport error")
	}
	if retriable(http.MethodGet, "/v3/p/volumes", context.Canceled) {
		t.Error("a cancelled request must not be repeated")
	}
}

func TestBackoffBounded(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Cap: 5 * time.Second}.withDefaults()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := p.backoff(uint(i + 1)); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
}

// TestWaitVolume: WaitVolume waits for a status; WaitAttached waits for
// in-use, and takes a volume back to available after it was reserved for
// an attach Nova gave up, reported at once, while one still available when
// first seen is waited for.
func TestWaitVolume(t *testing.T) {
	tests := []struct {
		name     string
		attach   bool     // WaitAttached, else WaitVolume for available
		statuses []string // answered in turn, the last one repeated
		wantErr  error
		wantText string
	}{
		{"becomes available", false, []string{"creating", "creating", "available"}, nil, ""},
		{"goes to error", false, []string{"creating", "error"}, ErrFailed, "volume v1 went to status error while waiting for it to become available"},
		{"times out", false, []string{"creating", "downloading"}, ErrTimeout, "volume v1 to become available; last status downloading"},
		{"attached", true, []string{"reserved", "attaching", "in-use"}, nil, ""},
		{"available before the attach", true, []string{"available", "reserved", "in-use"}, nil, ""},
		{"attach given up", true, []string{"reserved", "attaching", "available"}, ErrFailed, "the attach was given up"},
		{"attach error", true, []string{"attaching", "error_attaching"}, ErrFailed, "went to status error_attaching"},
		{"attach times out", true, []string{"reserved"}, ErrTimeout, "last status reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			c := fakeCinder(t, func(w http.ResponseWriter, r *http.Request) {
				i := min(int(n.Add(1))-1, len(tc.statuses)-1)
				fmt.Fprint(w, volumeJSON("v1", tc.statuses[i]))
			}, 200*time.Millisecond)
			var v *Volume
			var err error
			want := "available"
			if tc.attach {
				want = "in-use"
				v, err = c.WaitAttached(context.Background(), "v1")
			} else {
				v, err = c.WaitVolume(context.Background(), "v1", want)
			}
			if tc.wantErr == nil {
				if err != nil || v.Status != want {
					t.Fatalf("got %v, %v", v, err)
				}
				// Two polls found it elsewhere: the waits between count.
				if c.timing.Sleeps() < 2*time.Millisecond {
					t.Errorf("time asleep between polls %v, want at least 2 ms", c.timing.Sleeps())
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err %v, want %v saying %q", err, tc.wantErr, tc.wantText)
			}
		})
	}
}

func TestDeleteSnapshotWaitsUntilGone(t *testing.T) {
	var gets atomic.Int32
	c := fakeCinder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodDelete:
			w.WriteHeader(http.StatusAccepted)
		case http.MethodGet:
			if gets.Add(1) < 3 {
				fmt.Fprint(w, `{"snapshot": {"id": "s1", "status": "deleting"}}`)
				return
			}
			w.WriteHeader(http.StatusNotFound)
		}
	}, time.Second)
	if err := c.DeleteSnapshot(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	if gets.Load() != 3 {
		t.Errorf("%d polls, want 3 (until 404)", gets.Load())
	}
}

func TestAttachmentRBDImage(t *testing.T) {
	tests := []struct {
		name   string
		ci     map[string]any
		want   string
		wantOK bool
	}{
		{"rbd top level", map[string]any{"driver_volume_type": "rbd", "name": "volumes/volume-1"}, "volumes/volume-1", true},
		{"rbd under data", map[string]any{"driver_volume_type": "rbd", "data": map[string]any{"name": "volumes/volume-1"}}, "volumes/volume-1", true},
		{"iscsi", map[string]any{"driver_volume_type": "iscsi", "target_iqn": "x"}, "", false},
		{"rbd without pool", map[string]any{"driver_volume_type": "rbd", "name": "volume-1"}, "volume-1", false},
		{"empty", nil, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &Attachment{ConnectionInfo: tc.ci}
			got, _, ok := a.RBDImage()
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("got %q %v, want %q %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	if _, err := New(Config{AuthURL: "http://x/v3", Username: "u"}); !errors.Is(err, ErrConfig) {
		t.Errorf("no password: err %v, want ErrConfig", err)
	}
	if _, err := New(Config{Cloud: "no-such-cloud-anywhere"}); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown clouds.yaml cloud: err %v, want ErrConfig", err)
	}
}

// TestAttachCleansUpAfterServerError: Cinder leaves the reserved
// attachment of a failed create behind; Attach deletes it and tries
// again, a bounded number of times.
func TestAttachCleansUpAfterServerError(t *testing.T) {
	tests := []struct {
		name      string
		failures  int32
		wantErr   bool
		wantPosts int32
	}{
		{"one failure", 1, false, 2},
		{"always failing", 100, true, attachTries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var posts, deletes atomic.Int32
			c := fakeCinder(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/attachments"):
					if posts.Add(1) <= tc.failures {
						w.WriteHeader(http.StatusInternalServerError)
						fmt.Fprint(w, `{"computeFault": {"message": "Driver initialize connection failed"}}`)
						return
					}
					fmt.Fprint(w, `{"attachment": {"id": "a-ok", "volume_id": "v1", "status": "reserved",
						"connection_info": {"driver_volume_type": "rbd", "name": "volumes/volume-v1"}}}`)
				case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/attachments/detail"):
					if r.URL.Query().Get("volume_id") != "v1" {
						t.Errorf("attachments listed for %q", r.URL.RawQuery)
					}
					fmt.Fprint(w, `{"attachments": [{"id": "a-bad", "volume_id": "v1", "status": "error_attaching", "instance": null},
						{"id": "a-nova", "volume_id": "v1", "status": "attached", "instance": "server-1"}]}`)
				case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/attachments/a-bad"):
					deletes.Add(1)
				case r.Method == http.MethodDelete:
					t.Errorf("deleted %s: only cairn's attachment (no instance) may go", r.URL.Path)
				case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/volumes/v1"):
					fmt.Fprint(w, volumeJSON("v1", "available"))
				default:
					t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
					w.WriteHeader(http.StatusBadRequest)
				}
			}, time.Second)
			a, err := c.Attach(context.Background(), "v1", Connector("cairn-test"), "ro")
			if tc.wantErr != (err != nil) {
				t.Fatalf("Attach: %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr {
				if name, _, ok := a.RBDImage(); !ok || name != "volumes/volume-v1" {
					t.Errorf("attachment %+v", a)
				}
			}
			if posts.Load() != tc.wantPosts || deletes.Load() != tc.wantPosts-1 {
				t.Errorf("%d creates and %d clean-ups, want %d and %d", posts.Load(), deletes.Load(), tc.wantPosts, tc.wantPosts-1)
			}
		})
	}
}

// TestSnapshotsFilterRefused: a Cinder that refuses the volume_id filter
// to a user without an admin role (400) is asked for the project's
// snapshots, and those of the volume are picked here.
func TestSnapshotsFilterRefused(t *testing.T) {
	var queries []string
	c := fakeCinder(t, func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Has("volume_id") {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"badRequest": {"code": 400, "message": "Invalid filters volume_id are found in query options."}}`)
			return
		}
		fmt.Fprint(w, `{"snapshots": [{"id": "s1", "volume_id": "v1", "status": "available"}, {"id": "s2", "volume_id": "v2", "status": "available"}]}`)
	}, time.Second)
	ss, err := c.Snapshots(context.Background(), "v1")
	if err != nil || len(ss) != 1 || ss[0].ID != "s1" || len(queries) != 2 {
		t.Fatalf("snapshots of v1: %+v, %v after queries %q; want s1 only, asked twice", ss, err, queries)
	}
}
