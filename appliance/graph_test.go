package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn/dedup"
	"cairn/plugins"
	"cairn/plugins/file"
)

const serverType = "Test::Server"

// serverPlugin stands for a plugin whose instances depend on others (a
// server on its image and networks): its instances are files, and each
// depends on the files deps names.
type serverPlugin struct {
	*file.Plugin
	deps    []string
	depsErr error
}

func (s *serverPlugin) Type() string           { return serverType }
func (s *serverPlugin) Dependencies() []string { return []string{file.Type} }

func (s *serverPlugin) Instance(ctx context.Context, project, id string) (plugins.Resource, error) {
	r, err := s.Plugin.Instance(ctx, project, id)
	r.Type = serverType
	return r, err
}

func (s *serverPlugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	req.Resource.Type = file.Type
	return s.Plugin.Protect(ctx, repo, req)
}

func (s *serverPlugin) DependentResources(ctx context.Context, project string, r plugins.Resource) ([]plugins.Resource, error) {
	if s.depsErr != nil {
		return nil, s.depsErr
	}
	var out []plugins.Resource
	for _, id := range s.deps {
		d, err := s.Plugin.Instance(ctx, project, id)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// TestDependencyGraph: protecting a plan of a server pulls in what it
// depends on, protected before it and once even when the plan lists it
// too; the checkpoint's resources carry the edges resource_graph shows;
// the instance shows its dependent resources; a resolver's error fails
// the checkpoint with nothing protected.
func TestDependencyGraph(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, false)
	img, _ := e.volume("image.img", 20<<10)
	net, _ := e.volume("network.json", 1<<10)
	srv, _ := e.volume("server.img", 30<<10)
	e.stop()

	cfg := e.cfg
	fp, err := file.New(cfg.FileRoots, cfg.RestoreDir, file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp := &serverPlugin{Plugin: fp, deps: []string{img, net}}
	reg, err := plugins.NewRegistry(fp, sp)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(context.Background(), cfg, Options{Now: clk.Now, Log: slog.New(slog.DiscardHandler), Plugins: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = a.Close() })
	e2 := &testEnv{t: t, a: a, cfg: cfg, clk: clk}

	inst, err := a.Instance(context.Background(), "proj", serverType, srv)
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.DependentResources) != 2 || inst.DependentResources[0].ID != img {
		t.Fatalf("instance's dependent resources %+v", inst.DependentResources)
	}
	name := "server plan"
	// The network is in the plan too, after the server: it is protected once.
	p, err := a.CreatePlan(context.Background(), "proj", PlanInput{Name: &name, ProviderID: ProviderID,
		Resources: []PlanResource{{ID: srv, Type: serverType}, {ID: net, Type: file.Type}}})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	c := e2.waitCheckpoint("proj", cp.ID, CheckpointAvailable, CheckpointError)
	if c.Status != CheckpointAvailable {
		t.Fatalf("checkpoint %s: %s", c.Status, c.ErrorReason)
	}
	var keys []string
	for _, r := range c.Resources {
		if r.Status != ResourceAvailable {
			t.Fatalf("resource %+v", r)
		}
		keys = append(keys, plugins.Key(r.Resource))
	}
	imgKey, netKey, srvKey := file.Type+"#"+img, file.Type+"#"+net, serverType+"#"+srv
	if want := []string{imgKey, netKey, srvKey}; !slices.Equal(keys, want) {
		t.Fatalf("checkpoint resources %v, want %v (dependencies first, each once)", keys, want)
	}
	if got := c.Resources[2].DependsOn; !slices.Equal(got, []string{imgKey, netKey}) {
		t.Fatalf("server depends on %v", got)
	}
	if c.Resources[0].DependsOn != nil {
		t.Fatalf("image depends on %v", c.Resources[0].DependsOn)
	}
	g, _ := json.Marshal(c.Resources)
	if !strings.Contains(string(g), `"depends_on":["`+imgKey) {
		t.Fatalf("resource graph %s lacks the server's edges", g)
	}

	sp.depsErr = errors.New("nova: server gone")
	cp, err = a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	c = e2.waitCheckpoint("proj", cp.ID, CheckpointAvailable, CheckpointError)
	if c.Status != CheckpointError || !strings.Contains(c.ErrorReason, "server gone") {
		t.Fatalf("checkpoint with a failing resolver: %s %q", c.Status, c.ErrorReason)
	}
	for _, r := range c.Resources {
		if r.BackupID != "" || r.Status == ResourceAvailable {
			t.Fatalf("resource protected although the graph failed: %+v", r)
		}
	}
}
