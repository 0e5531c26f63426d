package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/spf13/cobra"

	"cairn/appliance"
	"cairn/plugins/file"
)

// applianceCommands are the commands that talk HTTP to a running
// appliance (cairn serve): plan and checkpoint.
func applianceCommands(a *app) []*cobra.Command {
	c := &applianceClient{a: a}
	plan := &cobra.Command{
		Use:   "plan",
		Short: "Protection plans of a running appliance (cairn serve)",
		Long: `Manage the protection plans of a running appliance over its Karbor API.
--url names the appliance and --project the project (noauth: any name).
Against an appliance with Keystone auth, set the OS_* variables of an
openrc file (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, …):
cairn logs in and acts in the token's project; or pass --token.`,
		Example: `  cairn plan create --name db --resource file=/var/lib/cairn/volumes/db.img
  cairn plan list --json`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	plan.AddCommand(c.planCreateCmd(), c.planListCmd())
	cp := &cobra.Command{
		Use:   "checkpoint",
		Short: "Checkpoints of a running appliance (cairn serve)",
		Long: `List, show and create the checkpoints of a running appliance over its
Karbor API. (cairn checkpoints, plural, lists a repository's checkpoints
directly.)`,
		Example: `  cairn checkpoint create --plan 6f1c0a52-8d1e-4c4b-9a53-0f7d2c1e9b10 --wait
  cairn checkpoint list --status available --limit 10
  cairn checkpoint show 0d7c1f3e-2b9a-4d8e-8f6a-5c4b3a291e07`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cp.AddCommand(c.checkpointListCmd(), c.checkpointShowCmd(), c.checkpointCreateCmd())
	for _, g := range []*cobra.Command{plan, cp} {
		pf := g.PersistentFlags()
		pf.StringVar(&c.url, "url", "http://127.0.0.1:8799", "the appliance's API address")
		pf.StringVar(&c.project, "project", "", "project (tenant) to act in (default: the Keystone token's project, else \""+appliance.DefaultConfig("").DefaultProject+"\")")
		pf.StringVar(&c.token, "token", "", "X-Auth-Token to send (default: a Keystone token for the OS_* variables when OS_AUTH_URL is set; noauth accepts any)")
	}
	return []*cobra.Command{plan, cp}
}

type applianceClient struct {
	a                   *app
	url, project, token string
	loggedIn            bool
}

// login settles the token and project before the first request. With
// OS_AUTH_URL set and no --token, it logs in to Keystone with the OS_*
// variables the openstack and karbor clients read.
func (c *applianceClient) login(ctx context.Context) error {
	if c.loggedIn {
		return nil
	}
	if c.token == "" && os.Getenv("OS_AUTH_URL") != "" {
		ao, err := authOptionsFromEnv()
		if err != nil {
			return usageError{err}
		}
		pc, err := openstack.AuthenticatedClient(ctx, ao)
		if err != nil {
			return fmt.Errorf("keystone login at %s: %w", ao.IdentityEndpoint, err)
		}
		c.token = pc.Token()
		if r, ok := pc.GetAuthResult().(tokens.CreateResult); ok && c.project == "" {
			if p, err := r.ExtractProject(); err == nil && p != nil {
				c.project = p.ID
			}
		}
	}
	if c.token == "" {
		c.token = "x" // noauth wants some token
	}
	if c.project == "" {
		c.project = appliance.DefaultConfig("").DefaultProject
	}
	c.loggedIn = true
	return nil
}

// authOptionsFromEnv reads the OS_* variables of an openrc file. It
// differs from gophercloud's reader in understanding the user's and the
// project's domains apart (OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME),
// as every Keystone v3 openrc sets them.
func authOptionsFromEnv() (gophercloud.AuthOptions, error) {
	env := func(names ...string) string {
		for _, n := range names {
			if v := os.Getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	ao := gophercloud.AuthOptions{IdentityEndpoint: env("OS_AUTH_URL"),
		Username: env("OS_USERNAME"), UserID: env("OS_USER_ID", "OS_USERID"), Password: env("OS_PASSWORD"),
		DomainName: env("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"), DomainID: env("OS_USER_DOMAIN_ID", "OS_DOMAIN_ID")}
	if ao.Username == "" && ao.UserID == "" || ao.Password == "" {
		return ao, errors.New("OS_AUTH_URL is set: also set OS_USERNAME (or OS_USER_ID) and OS_PASSWORD, or pass --token")
	}
	if ao.Username != "" && ao.DomainName == "" && ao.DomainID == "" {
		ao.DomainName = "Default"
	}
	scope := gophercloud.AuthScope{ProjectID: env("OS_PROJECT_ID", "OS_TENANT_ID"), ProjectName: env("OS_PROJECT_NAME", "OS_TENANT_NAME"),
		DomainName: env("OS_PROJECT_DOMAIN_NAME"), DomainID: env("OS_PROJECT_DOMAIN_ID")}
	if scope.ProjectName != "" && scope.DomainName == "" && scope.DomainID == "" {
		scope.DomainName = "Default"
	}
	if scope.ProjectID == "" && scope.ProjectName == "" {
		return ao, errors.New("OS_AUTH_URL is set: also set OS_PROJECT_NAME or OS_PROJECT_ID (the appliance needs a project-scoped token)")
	}
	if scope.ProjectID != "" {
		scope.ProjectName, scope.DomainName, scope.DomainID = "", "", ""
	}
	ao.Scope = &scope
	return ao, nil
}

// apiError is an OpenStack fault returned by the appliance.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("appliance: %s (HTTP %d)", e.msg, e.status) }

// call sends a request to /v1/PROJECT/path and decodes the answer into out.
func (c *applianceClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	if err := c.login(ctx); err != nil {
		return err
	}
	u := strings.TrimRight(c.url, "/") + "/v1/" + url.PathEscape(c.project) + path
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	req.Header.Set("X-Auth-Token", c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("appliance at %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("appliance at %s: %w", c.url, err)
	}
	if resp.StatusCode >= 300 {
		msg := strings.TrimSpace(string(raw))
		var f map[string]struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &f) == nil {
			for _, v := range f {
				if v.Message != "" {
					msg = v.Message
				}
			}
		}
		return &apiError{status: resp.StatusCode, msg: msg}
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("appliance answer: %w", err)
	}
	return nil
}

// emit prints v as JSON with --json, else runs table.
func (c *applianceClient) emit(v any, table func() error) error {
	if c.a.jsonOut {
		return writeJSON(c.a.stdout, v)
	}
	return table()
}

func (c *applianceClient) planCreateCmd() *cobra.Command {
	var name, desc string
	var resources []string
	cmd := &cobra.Command{
		Use:   "create --name NAME --resource TYPE=PATH|ID ...",
		Short: "Create a protection plan",
		Long: `Create a plan of one or more resources. TYPE is a protectable type
("OS::Cairn::File", or "file" for short); PATH|ID is the resource's name
(a file's absolute path) or its instance ID, as listed by the appliance.`,
		Example: `  cairn plan create --name db --resource file=/var/lib/cairn/volumes/db.img`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(resources) == 0 {
				return usagef("at least one --resource TYPE=PATH is required")
			}
			var rs []map[string]any
			for _, spec := range resources {
				r, err := c.resolve(cmd.Context(), spec)
				if err != nil {
					return err
				}
				rs = append(rs, r)
			}
			req := map[string]any{"plan": map[string]any{"name": name, "description": desc, "provider_id": appliance.ProviderID,
				"resources": rs, "parameters": map[string]any{}}}
			var out struct {
				Plan planView `json:"plan"`
			}
			if err := c.call(cmd.Context(), "POST", "/plans", req, &out); err != nil {
				return err
			}
			return c.emit(out.Plan, func() error { return writePlans(c.a.stdout, []planView{out.Plan}) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "plan name")
	f.StringVar(&desc, "description", "", "plan description")
	f.StringArrayVar(&resources, "resource", nil, "resource TYPE=PATH or TYPE=ID (repeatable)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// resolve turns TYPE=PATH|ID into a plan resource by looking the instance
// up on the appliance.
func (c *applianceClient) resolve(ctx context.Context, spec string) (map[string]any, error) {
	typ, ref, ok := strings.Cut(spec, "=")
	if !ok || typ == "" || ref == "" {
		return nil, usagef("--resource %q: want TYPE=PATH or TYPE=ID", spec)
	}
	if strings.EqualFold(typ, "file") {
		typ = file.Type
	}
	if filepath.IsAbs(ref) {
		ref = filepath.Clean(ref)
	}
	var out struct {
		Instances []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"instances"`
	}
	if err := c.call(ctx, "GET", "/protectables/"+url.PathEscape(typ)+"/instances", nil, &out); err != nil {
		return nil, err
	}
	for _, in := range out.Instances {
		if in.ID == ref || in.Name == ref {
			return map[string]any{"id": in.ID, "type": in.Type, "name": in.Name}, nil
		}
	}
	return nil, fmt.Errorf("--resource %s: no protectable %s instance named %q on the appliance", spec, typ, ref)
}

type planView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Resources []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"resources"`
	CreatedAt time.Time `json:"created_at"`
}

func writePlans(w io.Writer, ps []planView) error {
	t := newTable(w)
	fmt.Fprintln(t, "ID\tNAME\tSTATUS\tRESOURCES\tCREATED")
	for _, p := range ps {
		var names []string
		for _, r := range p.Resources {
			names = append(names, r.Name)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.Status, strings.Join(names, ","), formatTime(p.CreatedAt))
	}
	return t.Flush()
}

func (c *applianceClient) planListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List protection plans",
		Long:    `List the project's protection plans, newest first.`,
		Example: `  cairn plan list --project demo --url http://appliance:8799`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Plans []planView `json:"plans"`
			}
			if err := c.call(cmd.Context(), "GET", "/plans", nil, &out); err != nil {
				return err
			}
			if out.Plans == nil {
				out.Plans = []planView{}
			}
			return c.emit(out.Plans, func() error { return writePlans(c.a.stdout, out.Plans) })
		},
	}
}

type checkpointView struct {
	ID          string         `json:"id"`
	Status      string         `json:"status"`
	Progress    int            `json:"progress"`
	ErrorReason string         `json:"error_reason,omitempty"`
	ExtraInfo   map[string]any `json:"extra_info"`
	CreatedAt   time.Time      `json:"created_at"`
	Plan        struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"protection_plan"`
	Resources []struct {
		Resource struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"resource"`
		Status         string `json:"status"`
		Reason         string `json:"reason,omitempty"`
		Size           int64  `json:"size"`
		AllocatedBytes int64  `json:"allocated_bytes"`
		StoredBytes    int64  `json:"stored_bytes"`
	} `json:"resources"`
}

func (v checkpointView) size() int64 {
	var n int64
	for _, r := range v.Resources {
		n += r.Size
	}
	return n
}

func writeCheckpoints(w io.Writer, cs []checkpointView) error {
	t := newTable(w)
	fmt.Fprintln(t, "ID\tPLAN\tSTATUS\tPROGRESS\tSIZE\tCREATED")
	for _, c := range cs {
		fmt.Fprintf(t, "%s\t%s\t%s\t%d%%\t%s\t%s\n", c.ID, c.Plan.Name, c.Status, c.Progress, formatSize(c.size()), formatTime(c.CreatedAt))
	}
	return t.Flush()
}

func (c *applianceClient) checkpointsPath() string {
	return "/providers/" + appliance.ProviderID + "/checkpoints"
}

func (c *applianceClient) checkpointListCmd() *cobra.Command {
	var planID, status string
	var limit int
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List checkpoints, newest first",
		Long:    `List the project's checkpoints, newest first, optionally only those of one plan or in one status.`,
		Example: `  cairn checkpoint list --plan 6f1c0a52-8d1e-4c4b-9a53-0f7d2c1e9b10 --limit 5`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if planID != "" {
				q.Set("plan_id", planID)
			}
			if status != "" {
				q.Set("status", status)
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			path := c.checkpointsPath()
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var out struct {
				Checkpoints []checkpointView `json:"checkpoints"`
			}
			if err := c.call(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			if out.Checkpoints == nil {
				out.Checkpoints = []checkpointView{}
			}
			return c.emit(out.Checkpoints, func() error { return writeCheckpoints(c.a.stdout, out.Checkpoints) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&planID, "plan", "", "only checkpoints of this plan ID")
	f.StringVar(&status, "status", "", "only checkpoints in this status (protecting, available, error, deleting)")
	f.IntVar(&limit, "limit", 0, "at most this many (0: all)")
	return cmd
}

func (c *applianceClient) showCheckpoint(ctx context.Context, id string) (*checkpointView, error) {
	var out struct {
		Checkpoint checkpointView `json:"checkpoint"`
	}
	if err := c.call(ctx, "GET", c.checkpointsPath()+"/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out.Checkpoint, nil
}

func (c *applianceClient) writeCheckpoint(v *checkpointView) error {
	return c.emit(v, func() error {
		var k kv
		k.add("ID", "%s", v.ID)
		k.add("Plan", "%s (%s)", v.Plan.Name, v.Plan.ID)
		k.add("Status", "%s", v.Status)
		k.add("Progress", "%d%%", v.Progress)
		if v.ErrorReason != "" {
			k.add("Error", "%s", v.ErrorReason)
		}
		k.add("Created", "%s", formatTime(v.CreatedAt))
		k.add("Size", "%s", formatSize(v.size()))
		if err := k.write(c.a.stdout); err != nil {
			return err
		}
		fmt.Fprintln(c.a.stdout)
		t := newTable(c.a.stdout)
		fmt.Fprintln(t, "RESOURCE\tTYPE\tSTATUS\tSIZE\tALLOCATED\tSTORED\tREASON")
		for _, r := range v.Resources {
			fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.Resource.Name, r.Resource.Type, r.Status, r.Size, r.AllocatedBytes, r.StoredBytes, r.Reason)
		}
		return t.Flush()
	})
}

func (c *applianceClient) checkpointShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show a checkpoint with per-resource status and sizes",
		Long:    `Show a checkpoint: its status, progress, error, and each resource's status, size, allocated and stored bytes.`,
		Example: `  cairn checkpoint show 0d7c1f3e-2b9a-4d8e-8f6a-5c4b3a291e07 --json`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := c.showCheckpoint(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return c.writeCheckpoint(v)
		},
	}
}

func (c *applianceClient) checkpointCreateCmd() *cobra.Command {
	var planID string
	var wait bool
	cmd := &cobra.Command{
		Use:   "create --plan ID [--wait]",
		Short: "Protect a plan now",
		Long: `Protect a plan now. The appliance answers at once with the checkpoint
in status "protecting"; with --wait, cairn polls until it is available or
failed (and exits 1 if it failed).`,
		Example: `  cairn checkpoint create --plan 6f1c0a52-8d1e-4c4b-9a53-0f7d2c1e9b10 --wait`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := map[string]any{"checkpoint": map[string]any{"plan_id": planID}}
			var out struct {
				Checkpoint checkpointView `json:"checkpoint"`
			}
			if err := c.call(cmd.Context(), "POST", c.checkpointsPath(), req, &out); err != nil {
				return err
			}
			v := &out.Checkpoint
			for wait && v.Status == appliance.CheckpointProtecting {
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(200 * time.Millisecond):
				}
				var err error
				if v, err = c.showCheckpoint(cmd.Context(), v.ID); err != nil {
					return err
				}
			}
			if err := c.writeCheckpoint(v); err != nil {
				return err
			}
			if wait && v.Status != appliance.CheckpointAvailable {
				return errors.New("checkpoint " + v.ID + " is " + v.Status + ": " + v.ErrorReason)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&planID, "plan", "", "plan ID")
	f.BoolVar(&wait, "wait", false, "wait until the checkpoint is available or failed")
	_ = cmd.MarkFlagRequired("plan")
	return cmd
}
