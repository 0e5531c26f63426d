package main

import "testing"

func TestAuthOptionsFromEnv(t *testing.T) {
	base := map[string]string{"OS_AUTH_URL": "http://ks:5000/v3", "OS_USERNAME": "alice", "OS_PASSWORD": "pw"}
	cases := []struct {
		name       string
		env        map[string]string
		wantErr    bool
		userDomain string
		projName   string
		projID     string
		projDomain string
	}{
		{"openrc with domains", map[string]string{"OS_PROJECT_NAME": "p", "OS_USER_DOMAIN_NAME": "users", "OS_PROJECT_DOMAIN_NAME": "projects"}, false, "users", "p", "", "projects"},
		{"domains default", map[string]string{"OS_PROJECT_NAME": "p"}, false, "Default", "p", "", "Default"},
		{"project ID wins", map[string]string{"OS_PROJECT_ID": "abc", "OS_PROJECT_NAME": "p", "OS_PROJECT_DOMAIN_NAME": "d"}, false, "Default", "", "abc", ""},
		{"no project", map[string]string{}, true, "", "", "", ""},
		{"no password", map[string]string{"OS_PROJECT_NAME": "p", "OS_PASSWORD": ""}, true, "", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"OS_AUTH_URL", "OS_USERNAME", "OS_USER_ID", "OS_USERID", "OS_PASSWORD", "OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME",
				"OS_USER_DOMAIN_ID", "OS_DOMAIN_ID", "OS_PROJECT_ID", "OS_TENANT_ID", "OS_PROJECT_NAME", "OS_TENANT_NAME", "OS_PROJECT_DOMAIN_NAME", "OS_PROJECT_DOMAIN_ID"} {
				t.Setenv(k, "")
			}
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			ao, err := authOptionsFromEnv()
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if err != nil {
				return
			}
			if ao.DomainName != c.userDomain || ao.Scope.ProjectName != c.projName || ao.Scope.ProjectID != c.projID || ao.Scope.DomainName != c.projDomain {
				t.Fatalf("got user domain %q, scope %+v", ao.DomainName, *ao.Scope)
			}
		})
	}
}
