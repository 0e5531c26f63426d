package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cairn/dedup"
	"cairn/internal/keylock"
	"cairn/plugins"
	"cairn/plugins/file"
)

// Options are the parts of an appliance that tests replace.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives structured logs (default slog.Default()).
	Log *slog.Logger
	// Plugins, if set, replaces the built-in plugin registry.
	Plugins *plugins.Registry
}

// Appliance owns the projects' repositories, the state and the job runner. All state
// changes happen under mu and are persisted before mu is released, so a
// reader never sees an update that a crash could lose.
type Appliance struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	// repos holds one repository per project.
	repos *repoSet
	reg   *plugins.Registry
	// trusts makes the Keystone trusts scheduled operations act through;
	// nil without a cloud section.
	trusts Trusts
	st     stateStore
	// closers are the plugins Open built that hold resources.
	closers []io.Closer

	mu            sync.Mutex
	plans         map[string]*Plan
	checkpoints   map[string]*Checkpoint
	published     publishedSet
	restores      map[string]*Restore
	verifications map[string]*Restore
	triggers      map[string]*Trigger
	ops           map[string]*ScheduledOperation
	oplogs        map[string]*OperationLog
	quotas        map[string]*Quota
	jobs          map[string]*job
	// resLocks serialise protections per resource ("type#id").
	resLocks  keylock.Map
	lastPrune time.Time

	// bg tracks background work started by Tick (prune); Run and Close
	// wait for it. pruning keeps prunes one at a time.
	bg        sync.WaitGroup
	pruning   atomic.Bool
	pruneHook func(context.Context) // tests replace the prune

	queue   *jobQueue
	metrics metrics
}

type queued struct {
	j  *job
	fn func(ctx context.Context) error
}

// Open opens the state and recovers from a previous crash: jobs that were
// running are marked failed with ErrInterrupted and what they created is
// removed. Each project's repository is opened (created on first use)
// when a job of the project needs it.
func Open(ctx context.Context, cfg Config, o Options) (*Appliance, error) {
	a, err := newAppliance(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := a.refuseSharedRepo(); err != nil {
		return nil, err
	}
	if a.reg == nil {
		if err := a.builtinPlugins(a.cfg); err != nil {
			return nil, err
		}
	}
	st, err := openState(a.cfg.DataDir, a.log.Info)
	if err != nil {
		a.closePlugins()
		return nil, err
	}
	a.st = countingStore{st, &a.metrics.stateWrites}
	if err := a.load(); err != nil {
		a.closePlugins()
		_ = a.st.close()
		return nil, err
	}
	if err := a.recover(ctx); err != nil {
		a.closePlugins()
		_ = a.repos.close()
		_ = a.st.close()
		return nil, err
	}
	return a, nil
}

// newAppliance checks cfg, reads the repository passphrase and makes the
// data directories; it opens nothing.
func newAppliance(cfg Config, o Options) (*Appliance, error) {
	if err := cfg.Fill(); err != nil {
		return nil, err
	}
	a := &Appliance{cfg: cfg, log: o.Log, now: o.Now, reg: o.Plugins,
		plans: map[string]*Plan{}, checkpoints: map[string]*Checkpoint{}, restores: map[string]*Restore{},
		verifications: map[string]*Restore{}, triggers: map[string]*Trigger{}, ops: map[string]*ScheduledOperation{},
		oplogs: map[string]*OperationLog{}, quotas: map[string]*Quota{}, jobs: map[string]*job{},
		queue: newJobQueue(cfg.ProjectMaxQueued, cfg.ProjectMaxRunning)}
	a.metrics.init(a)
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	for _, d := range append([]string{cfg.DataDir, cfg.RestoreDir}, cfg.FileRoots...) {
		if strings.Contains(d, plugins.ProjectPlaceholder) {
			continue // one per project, made when first needed
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("appliance: %w", err)
		}
	}
	var pw []byte
	if cfg.PasswordFile != "" {
		var err error
		if pw, err = dedup.ReadKeyFile(cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
	}
	a.repos = newRepoSet(cfg, pw, a.now, a.log)
	return a, nil
}

// builtinPlugins builds the registry from the configuration: files, RBD
// images when rbd_pools is set, Cinder volumes, Glance images and
// Neutron networks when cloud is.
func (a *Appliance) builtinPlugins(cfg Config) error {
	if cfg.Auth != "noauth" {
		// With real tenants, shared directories or pools would let every
		// project see and protect the same resources.
		for _, d := range append(append([]string{cfg.RestoreDir}, cfg.FileRoots...), cfg.RBDPools...) {
			if !strings.Contains(d, plugins.ProjectPlaceholder) {
				a.log.Warn("protectable location shared by all projects; put "+plugins.ProjectPlaceholder+" in it to give each project its own", "location", d)
			}
		}
	}
	fp, err := file.New(cfg.FileRoots, cfg.RestoreDir, file.Options{Devices: cfg.FileDevices})
	if err != nil {
		return err
	}
	ps := []plugins.ProtectionPlugin{fp}
	rp, err := rbdPlugin(cfg, a.log)
	if err != nil {
		return err
	}
	if rp != nil {
		ps = append(ps, rp)
	}
	cps, trusts, err := cloudPlugins(cfg, &cloudJournal{a: a}, &glanceJournal{a: a}, &a.metrics.cloud, a.log)
	if err != nil {
		return err
	}
	a.trusts = trusts
	ps = append(ps, cps...)
	for _, p := range ps {
		if c, ok := p.(io.Closer); ok {
			a.closers = append(a.closers, c)
		}
	}
	a.reg, err = plugins.NewRegistry(ps...)
	return err
}

// closePlugins releases what the plugins the appliance built hold (the
// RBD plugin's cluster connection).
func (a *Appliance) closePlugins() {
	for _, c := range a.closers {
		if err := c.Close(); err != nil {
			a.log.Error("close plugin", "err", err)
		}
	}
	a.closers = nil
}

// Config returns the effective configuration.
func (a *Appliance) Config() Config { return a.cfg }

// Close waits for background work (a prune started by Tick) and closes
// the repositories. Call it after Run has returned; cancel the context given
// to Tick first to stop a running prune early.
func (a *Appliance) Close() error {
	a.bg.Wait()
	a.closePlugins()
	return errors.Join(a.repos.close(), a.st.close())
}

func loadKind[T any](s stateStore, kind string, m map[string]*T) error {
	return s.loadAll(kind, func(id string, b []byte) error {
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return err
		}
		m[id] = v
		return nil
	})
}

func (a *Appliance) load() error {
	err := errors.Join(
		loadKind(a.st, "plans", a.plans), loadKind(a.st, "checkpoints", a.checkpoints),
		loadKind(a.st, "restores", a.restores), loadKind(a.st, "verifications", a.verifications),
		loadKind(a.st, "triggers", a.triggers), loadKind(a.st, "scheduled_operations", a.ops),
		loadKind(a.st, "operation_logs", a.oplogs), loadKind(a.st, "quotas", a.quotas),
		loadKind(a.st, "jobs", a.jobs))
	for _, cp := range a.checkpoints {
		a.published.put(cloneCheckpoint(cp))
	}
	return err
}

// saveCheckpointLocked persists cp and publishes a copy for readers.
func (a *Appliance) saveCheckpointLocked(cp *Checkpoint) {
	a.save("checkpoints", cp.ID, cp)
	a.published.put(cloneCheckpoint(cp))
}

// dropCheckpointLocked forgets a deleted checkpoint.
func (a *Appliance) dropCheckpointLocked(id string) {
	delete(a.checkpoints, id)
	a.published.drop(id)
}

// save persists one object; callers hold mu.
func (a *Appliance) save(kind, id string, v any) {
	if err := a.st.put(kind, id, v); err != nil {
		a.metrics.storeErrors.Add(1)
		a.log.Error("persist state", "kind", kind, "id", id, "err", err)
	}
}

// Run runs the job workers and the operation engine until ctx is done,
// then waits for running jobs to stop (they see ctx cancelled and are
// marked failed with ErrInterrupted).
func (a *Appliance) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < a.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.worker(ctx)
		}()
	}
	t := time.NewTicker(time.Duration(a.cfg.Tick))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			a.bg.Wait()
			return nil
		case <-t.C:
			a.Tick(ctx)
		}
	}
}
