package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConsoleKeystone logs in to the console through its Keystone form
// (and with a pasted token):
// alice sees her project's resource; bob, in another project, sees
// nothing of it; the administrator's view lists both projects and finds
// alice's resource by name. The token never appears in a URL.
func TestConsoleKeystone(t *testing.T) {
	env := keystoneEnv(t)
	ks := newKeystoneAdmin(t, env)
	sfx := randomSuffix()
	nameA, nameB, nameSvc := "console-a-"+sfx, "console-b-"+sfx, "console-svc-"+sfx
	projA, projB := ks.project(nameA), ks.project(nameB)
	adminProject := ks.project(nameSvc)
	const pw = "pw-for-console-tests"
	ks.user("alice-"+sfx, pw, projA, "member")
	ks.user("bob-"+sfx, pw, projB, "member")
	ks.user("cairn-"+sfx, pw, adminProject, "admin") // the service user; also the admin
	pwFile := filepath.Join(t.TempDir(), "keystone-password")
	writeFile(t, pwFile, []byte(pw+"\n"))
	a, _, disk, other := consoleSetup(t, map[string]any{
		"auth": "keystone",
		"keystone": map[string]any{"auth_url": env["OS_AUTH_URL"], "username": "cairn-" + sfx, "password_file": pwFile,
			"project_name": nameSvc, "cache_ttl": "30s", "admin_project": nameSvc},
	}, projA, projB)
	tokA, tokB := ks.token("alice-"+sfx, pw, projA), ks.token("bob-"+sfx, pw, projB)
	withToken := func(tok string) *appliance {
		c := *a
		c.client = &http.Client{Timeout: time.Minute, Transport: tokenTransport(tok)}
		return &c
	}
	asA, asB := withToken(tokA), withToken(tokB)
	asA.waitCheckpoint(projA, asA.createCheckpoint(projA, asA.createFilePlan(projA, "plan-a", disk)))
	asB.createFilePlan(projB, "plan-b", other)

	b := startBrowser(t)
	login := func(user, project string) {
		t.Helper()
		b.open(a.base() + "/#/login")
		b.typeInto("#login-username", user)
		b.typeInto("#login-password", pw)
		b.typeInto("#login-project", project)
		b.click("#login-submit")
		b.wait(30*time.Second, user+"'s view", "return document.querySelector('main').dataset.ready === 'yes'")
		var url string
		b.js(&url, "return location.href + ' ' + document.body.innerHTML")
		for _, tok := range []string{tokA, tokB} {
			if strings.Contains(url, tok) {
				t.Fatalf("a token is in the page or its URL")
			}
		}
	}

	// A wrong password is refused on the form.
	b.open(a.base() + "/#/login")
	b.typeInto("#login-username", "alice-"+sfx)
	b.typeInto("#login-password", "not-the-password")
	b.typeInto("#login-project", nameA)
	b.click("#login-submit")
	b.wait(30*time.Second, "the login error", `return document.querySelector('#login-error').textContent.includes('refused')`)
	b.screenshot("01-login-refused")

	login("alice-"+sfx, nameA)
	if got := b.text("#resources"); !strings.Contains(got, "console-disk.img") {
		t.Fatalf("alice's resources %q", got)
	}
	b.screenshot("02-alice")

	login("bob-"+sfx, nameB)
	if got := b.text("#resources"); strings.Contains(got, "console-disk") || !strings.Contains(got, "other-volume.img") {
		t.Fatalf("bob's resources %q", got)
	}
	if got := b.text("#summary"); !strings.Contains(got, "0\ncheckpoints") {
		t.Errorf("bob's summary %q, want 0 checkpoints", got)
	}
	var code float64
	b.js(&code, `const s = JSON.parse(sessionStorage.getItem('cairn.session'));
		return fetch('/v1/' + arguments[0] + '/resources', {headers: {'X-Auth-Token': s.token}}).then((r) => r.status)`, projA)
	if code != 403 {
		t.Errorf("bob's token on project A's resources: %v, want 403", code)
	}
	b.screenshot("03-bob")

	// A pasted token logs in as its user and project.
	b.open(a.base() + "/#/login")
	b.typeInto("#login-token", tokA)
	b.click("#form-token button[type=submit]")
	b.wait(30*time.Second, "the token's project view", "return document.querySelector('main').dataset.ready === 'yes' && location.hash.includes(arguments[0])", projA)
	if got := b.text("#resources"); !strings.Contains(got, "console-disk.img") {
		t.Fatalf("resources after a token login %q", got)
	}

	login("cairn-"+sfx, nameSvc)
	b.click("#nav-admin")
	b.wait(30*time.Second, "the admin view", `return document.querySelectorAll('#admin-summary tr.project').length >= 2`)
	for _, p := range []string{projA, projB} {
		b.find(`#admin-summary tr.project[data-id="` + p + `"]`)
	}
	if got := b.text(`#admin-summary tr.project[data-id="` + projA + `"]`); !strings.Contains(got, "1") {
		t.Errorf("project A's line %q", got)
	}
	b.typeInto("#search-q", "console-disk")
	b.click("#search-submit")
	b.wait(30*time.Second, "search results", `return document.querySelectorAll('#search-results tr.found').length > 0`)
	var found []string
	b.js(&found, `return [...document.querySelectorAll('#search-results tr.found')].map((r) => r.dataset.project)`)
	if len(found) != 1 || found[0] != projA {
		t.Fatalf("search for console-disk found %v, want project A's one", found)
	}
	b.screenshot("04-admin")
}

// tokenTransport sends every request with the token in X-Auth-Token.
type tokenTransport string

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Auth-Token", string(t))
	return http.DefaultTransport.RoundTrip(r)
}
