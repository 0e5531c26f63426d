package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeKeystone answers the two Keystone v3 calls cairn makes: password
// authentication of the service user and token validation. It stands in
// for Keystone in these unit tests only; e2e/keystone_test.go runs the
// real one.
type fakeKeystone struct {
	*httptest.Server
	mu        sync.Mutex
	tokens    map[string]fakeToken // subject token -> what it is
	down      atomic.Bool          // answer 500 to validations
	validates atomic.Int64
	// logins maps user names to their password and the token a password
	// login gets.
	logins map[string][2]string
}

type fakeToken struct {
	user, project string
	roles         []string
	expires       time.Time
	// system makes a system-scoped token (no project); domain is the
	// project's domain ID (default "default").
	system bool
	domain string
}

const serviceToken = "service-token"

func newFakeKeystone(t *testing.T) *fakeKeystone {
	t.Helper()
	f := &fakeKeystone{tokens: map[string]fakeToken{}, logins: map[string][2]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeKeystone) add(token, user, project string, expires time.Time, roles ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[token] = fakeToken{user: user, project: project, roles: roles, expires: expires}
}

func (f *fakeKeystone) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v3/auth/tokens" {
		http.NotFound(w, r)
		return
	}
	tokenBody := func(t fakeToken) map[string]any {
		roles := []map[string]any{}
		for _, r := range t.roles {
			roles = append(roles, map[string]any{"id": "id-" + r, "name": r})
		}
		dom := map[string]any{"id": "default", "name": "Default"}
		if t.domain != "" {
			dom = map[string]any{"id": t.domain, "name": "Name-" + t.domain}
		}
		body := map[string]any{
			"expires_at": t.expires.UTC().Format(time.RFC3339),
			"user":       map[string]any{"id": t.user, "name": t.user, "domain": map[string]any{"id": "default"}},
			"roles":      roles,
		}
		if t.system {
			body["system"] = map[string]any{"all": true}
		} else {
			// A name unlike the ID, to tell the two apart.
			body["project"] = map[string]any{"id": t.project, "name": "Name-" + t.project, "domain": dom}
		}
		return map[string]any{"token": body}
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodPost: // the service user logs in
		var body struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct{ Name, Password string }
					}
				}
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		l, user := f.logins[body.Auth.Identity.Password.User.Name]
		f.mu.Unlock()
		if u := body.Auth.Identity.Password.User; user && u.Password == l[0] && r.Header.Get("X-Auth-Token") == "" {
			w.Header().Set("X-Subject-Token", l[1])
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(tokenBody(f.tokens[l[1]]))
			return
		}
		if u := body.Auth.Identity.Password.User; u.Name != "cairn" || u.Password != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":401,"message":"The request you have made requires authentication."}}`))
			return
		}
		w.Header().Set("X-Subject-Token", serviceToken)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(tokenBody(fakeToken{user: "cairn", project: "service", roles: []string{"service"}, expires: time.Now().Add(time.Hour)}))
	case http.MethodGet: // validate X-Subject-Token with X-Auth-Token
		f.validates.Add(1)
		if r.Header.Get("X-Auth-Token") != serviceToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if f.down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		f.mu.Lock()
		t, ok := f.tokens[r.Header.Get("X-Subject-Token")]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":404,"message":"Could not find token."}}`))
			return
		}
		_ = json.NewEncoder(w).Encode(tokenBody(t))
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func newTestKeystone(t *testing.T, f *fakeKeystone, now func() time.Time) *Keystone {
	t.Helper()
	return newTestKeystoneOpts(t, f, KeystoneOptions{AdminProject: "admin", Now: now})
}

func newTestKeystoneOpts(t *testing.T, f *fakeKeystone, o KeystoneOptions) *Keystone {
	t.Helper()
	o.AuthURL, o.Username, o.Password, o.ProjectName, o.CacheTTL = f.URL+"/v3", "cairn", "secret", "service", time.Minute
	k, err := NewKeystone(context.Background(), o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeystoneWrongServicePassword(t *testing.T) {
	f := newFakeKeystone(t)
	_, err := NewKeystone(context.Background(), KeystoneOptions{AuthURL: f.URL + "/v3", Username: "cairn", Password: "wrong"}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("NewKeystone accepted a wrong service password")
	}
	if _, err := NewKeystone(context.Background(), KeystoneOptions{AuthURL: f.URL + "/v3"}, nil); err == nil {
		t.Fatal("NewKeystone accepted options without credentials")
	}
}

// TestKeystoneScoping drives the whole API through Keystone tokens: a
// member acts only in its project, an admin in any, and quota changes
// need the admin role.
func TestKeystoneScoping(t *testing.T) {
	f := newFakeKeystone(t)
	later := time.Now().Add(time.Hour)
	f.add("tok-a", "alice", "projA", later, "member")
	f.add("tok-b", "bob", "projB", later, "member", "reader")
	f.add("tok-admin", "root", "admin", later, "admin")
	e := newEnvAuth(t, newTestKeystone(t, f, time.Now))

	plans := func(p string) string { return "/v1/" + p + "/plans" }
	cases := []struct {
		name, token, method, path string
		body                      any
		code                      int
		fault                     string
	}{
		{"no token", "", "GET", plans("projA"), nil, 401, "unauthorized"},
		{"unknown token", "forged", "GET", plans("projA"), nil, 401, "unauthorized"},
		{"member, own project", "tok-a", "GET", plans("projA"), nil, 200, ""},
		{"member, other project", "tok-a", "GET", plans("projB"), nil, 403, "forbidden"},
		{"member, other project's provider list", "tok-b", "GET", "/v1/projA/providers", nil, 403, "forbidden"},
		{"member, other project's checkpoint", "tok-b", "GET", "/v1/projA/providers/cf56bd3e-97a7-4078-b6d5-f36246333fd9/checkpoints", nil, 403, "forbidden"},
		{"admin, any project", "tok-admin", "GET", plans("projB"), nil, 200, ""},
		{"member sets a quota", "tok-a", "PUT", "/v1/projA/quotas/projA", map[string]any{"quota": map[string]any{"plans": 3}}, 403, "forbidden"},
		{"admin sets a quota", "tok-admin", "PUT", "/v1/projA/quotas/projA", map[string]any{"quota": map[string]any{"plans": 3}}, 200, ""},
		{"health needs no token", "", "GET", "/healthz", nil, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, m := e.with(t).asToken(c.token).do(c.method, c.path, c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %v", code, c.code, m)
			}
			if c.fault != "" {
				fault(t, m, c.fault, c.code)
			}
		})
	}
}

// TestKeystoneAdminScope: the admin role makes an administrator only in
// the configured admin project (by ID, or by name in its domain) or on a
// system-scoped token; elsewhere its holder is a member of its project.
func TestKeystoneAdminScope(t *testing.T) {
	later := time.Now().Add(time.Hour)
	tokens := map[string]fakeToken{
		"tok-ops":          {user: "root", project: "ops", roles: []string{"admin"}, expires: later},
		"tok-ops-member":   {user: "eve", project: "ops", roles: []string{"member"}, expires: later},
		"tok-tenant-admin": {user: "mallory", project: "projB", roles: []string{"admin", "member"}, expires: later},
		"tok-other-domain": {user: "trudy", project: "ops2", roles: []string{"admin"}, expires: later, domain: "d2"},
		"tok-system":       {user: "sys", roles: []string{"admin"}, expires: later, system: true},
		"tok-system-rdr":   {user: "sys2", roles: []string{"reader"}, expires: later, system: true},
	}
	quota := map[string]any{"quota": map[string]any{"plans": 3}}
	type call struct {
		token, method, path string
		code                int
	}
	tenantAdmin := []call{ // an "admin" role in an ordinary project is a member there
		{"tok-tenant-admin", "GET", "/v1/projB/plans", 200},
		{"tok-tenant-admin", "GET", "/v1/projA/plans", 403},
		{"tok-tenant-admin", "GET", "/v1/projB/plans?all_tenants=1", 403},
		{"tok-tenant-admin", "PUT", "/v1/projB/quotas/projB", 403},
		{"tok-ops-member", "GET", "/v1/projA/plans", 403},
		{"tok-system-rdr", "GET", "/v1/projA/plans", 401},
	}
	for _, tc := range []struct {
		name  string
		o     KeystoneOptions
		calls []call
	}{
		{"admin project by ID", KeystoneOptions{AdminProject: "ops"}, append([]call{
			{"tok-ops", "GET", "/v1/projA/plans", 200},
			{"tok-ops", "PUT", "/v1/projA/quotas/projA", 200},
			{"tok-system", "GET", "/v1/projA/plans?all_tenants=1", 200},
			{"tok-other-domain", "GET", "/v1/projA/plans", 403},
		}, tenantAdmin...)},
		{"admin project by name", KeystoneOptions{AdminProject: "Name-ops"}, append([]call{
			{"tok-ops", "PUT", "/v1/projA/quotas/projA", 200},
			{"tok-other-domain", "GET", "/v1/projA/plans", 403},
		}, tenantAdmin...)},
		{"admin project by name in another domain", KeystoneOptions{AdminProject: "Name-ops2", AdminProjectDomain: "Name-d2"}, []call{
			{"tok-other-domain", "GET", "/v1/projA/plans", 200},
			{"tok-ops", "GET", "/v1/projA/plans", 403},
		}},
		{"same name, wrong domain", KeystoneOptions{AdminProject: "Name-ops2"}, []call{
			{"tok-other-domain", "GET", "/v1/projA/plans", 403},
		}},
		{"no admin project: system scope only", KeystoneOptions{}, append([]call{
			{"tok-ops", "GET", "/v1/projA/plans", 403},
			{"tok-ops", "PUT", "/v1/ops/quotas/ops", 403},
			{"tok-system", "GET", "/v1/projA/plans", 200},
			{"tok-system", "PUT", "/v1/projA/quotas/projA", 200},
		}, tenantAdmin...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeKeystone(t)
			for k, v := range tokens {
				f.mu.Lock()
				f.tokens[k] = v
				f.mu.Unlock()
			}
			tc.o.Now = time.Now
			e := newEnvAuth(t, newTestKeystoneOpts(t, f, tc.o))
			for _, c := range tc.calls {
				var body any
				if c.method == "PUT" {
					body = quota
				}
				code, m := e.with(t).asToken(c.token).do(c.method, c.path, body)
				if code != c.code {
					t.Errorf("%s %s %s: status %d, want %d: %v", c.token, c.method, c.path, code, c.code, m)
				}
			}
		})
	}
}

func TestKeystoneCache(t *testing.T) {
	f := newFakeKeystone(t)
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	clock := func() time.Time { return *now.Load() }
	k := newTestKeystone(t, f, clock)
	ctx := context.Background()
	f.add("tok", "alice", "projA", t0.Add(90*time.Second), "member")

	// Many concurrent requests with one new token ask Keystone once.
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id, err := k.Authenticate(ctx, "tok"); err != nil || id.ProjectID != "projA" || id.Admin {
				t.Errorf("Authenticate = %+v, %v", id, err)
			}
		}()
	}
	wg.Wait()
	if n := f.validates.Load(); n != 1 {
		t.Fatalf("16 concurrent requests validated %d times, want 1", n)
	}
	// Within the TTL: answered from the cache, even with Keystone down.
	f.down.Store(true)
	if _, err := k.Authenticate(ctx, "tok"); err != nil {
		t.Fatalf("cached token refused: %v", err)
	}
	// After the TTL (60 s) Keystone is asked again; being down is a 503
	// and is not cached.
	t1 := t0.Add(61 * time.Second)
	now.Store(&t1)
	if _, err := k.Authenticate(ctx, "tok"); !errors.Is(err, errAuthUnavailable) {
		t.Fatalf("Keystone down: err = %v, want errAuthUnavailable", err)
	}
	f.down.Store(false)
	if _, err := k.Authenticate(ctx, "tok"); err != nil {
		t.Fatalf("Keystone back: %v", err)
	}
	// The token expires at t0+90s: the cache entry ends there, not at
	// t1+60s, and the expired token is refused.
	t2 := t0.Add(91 * time.Second)
	now.Store(&t2)
	before := f.validates.Load()
	if _, err := k.Authenticate(ctx, "tok"); !errors.Is(err, errUnauthenticated) {
		t.Fatalf("expired token: err = %v, want errUnauthenticated", err)
	}
	if f.validates.Load() == before {
		t.Fatal("an entry outlived its token's expiry")
	}
	// Invalid tokens are cached too: a client hammering with a bad token
	// costs one validation per TTL.
	before = f.validates.Load()
	for range 5 {
		if _, err := k.Authenticate(ctx, "bad"); !errors.Is(err, errUnauthenticated) {
			t.Fatalf("bad token: err = %v", err)
		}
	}
	if n := f.validates.Load() - before; n != 1 {
		t.Fatalf("5 requests with one bad token validated %d times, want 1", n)
	}
	hits, misses := k.CacheStats()
	if hits == 0 || misses == 0 {
		t.Fatalf("cache stats hits=%d misses=%d, want both > 0", hits, misses)
	}
	c := k.collectors()
	if got := testutil.ToFloat64(c[0]); got != float64(hits) {
		t.Fatalf("cairn_auth_token_cache_hits_total %v, want %d", got, hits)
	}
	if got := testutil.ToFloat64(c[1]); got != float64(misses) {
		t.Fatalf("cairn_auth_token_cache_misses_total %v, want %d", got, misses)
	}
}

func TestKeystoneCacheBounded(t *testing.T) {
	f := newFakeKeystone(t)
	k := newTestKeystone(t, f, time.Now)
	k.o.CacheSize = 8
	for i := range 100 {
		_, _ = k.Authenticate(context.Background(), "bad-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	k.mu.Lock()
	n := len(k.cache)
	k.mu.Unlock()
	if n > 8 {
		t.Fatalf("cache holds %d entries, bound is 8", n)
	}
}

// TestAllTenants: an admin's all_tenants list holds every project's
// plans and can be filtered by project_id; a member asking for it is
// refused, not quietly given its own.
func TestAllTenants(t *testing.T) {
	f := newFakeKeystone(t)
	later := time.Now().Add(time.Hour)
	f.add("tok-a", "alice", "projA", later, "member")
	f.add("tok-b", "bob", "projB", later, "member")
	f.add("tok-admin", "root", "admin", later, "admin")
	e := newEnvAuth(t, newTestKeystone(t, f, time.Now))
	id, _ := e.volume("a.img", 4<<10)
	planA := e.asToken("tok-a").createPlan("projA", id)
	planB := e.asToken("tok-b").createPlan("projB", id)

	ids := func(m map[string]any) []string {
		var out []string
		for _, p := range m["plans"].([]any) {
			out = append(out, p.(map[string]any)["id"].(string))
		}
		slices.Sort(out)
		return out
	}
	all := e.asToken("tok-admin").must(200, "GET", "/v1/admin/plans?all_tenants=1", nil)
	if got, want := ids(all), slices.Sorted(slices.Values([]string{planA, planB})); !slices.Equal(got, want) {
		t.Fatalf("admin all_tenants plans %v, want %v", got, want)
	}
	onlyB := e.asToken("tok-admin").must(200, "GET", "/v1/admin/plans?all_tenants=true&project_id=projB", nil)
	if got := ids(onlyB); !slices.Equal(got, []string{planB}) {
		t.Fatalf("admin all_tenants&project_id=projB plans %v, want [%s]", got, planB)
	}
	if got := ids(e.asToken("tok-a").must(200, "GET", "/v1/projA/plans?all_tenants=0", nil)); !slices.Equal(got, []string{planA}) {
		t.Fatalf("all_tenants=0 plans %v, want alice's only", got)
	}
	code, m := e.asToken("tok-a").do("GET", "/v1/projA/plans?all_tenants=1", nil)
	if code != 403 {
		t.Fatalf("member all_tenants: %d %v, want 403", code, m)
	}
	fault(t, m, "forbidden", 403)
	code, m = e.asToken("tok-admin").do("GET", "/v1/admin/providers/cf56bd3e-97a7-4078-b6d5-f36246333fd9/checkpoints?all_tenants=maybe", nil)
	if code != 400 {
		t.Fatalf("all_tenants=maybe: %d %v, want 400", code, m)
	}
}

// TestNoAuthIgnoresAllTenants: without auth anyone may name any project,
// so all_tenants must not become a way to list them all at once.
func TestNoAuthIgnoresAllTenants(t *testing.T) {
	e := newEnv(t)
	id, _ := e.volume("a.img", 4<<10)
	planA := e.createPlan("projA", id)
	e.createPlan("projB", id)
	m := e.must(200, "GET", "/v1/projA/plans?all_tenants=1", nil)
	l := m["plans"].([]any)
	if len(l) != 1 || l[0].(map[string]any)["id"] != planA {
		t.Fatalf("noauth all_tenants plans %v, want only projA's %s", l, planA)
	}
}
