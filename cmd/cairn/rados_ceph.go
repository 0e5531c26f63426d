//go:build ceph

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"cairn/dedup"
	"cairn/dedup/store/rados"
)

// registerBackends wires the repository backends this build has. It is the
// one place they are registered, called before any repository is opened.
func registerBackends() {
	dedup.RegisterBackend(rados.BackendName, func(ctx context.Context, locator []byte) (dedup.Backend, error) {
		return rados.OpenShards(ctx, locator)
	})
}

func (r *radosFlags) locator() (rados.Locator, error) {
	l, err := rados.NewLocator(r.pools, r.namespace, rados.ConnOptions{Conf: r.conf, ID: r.id, Keyring: r.keyring})
	if err != nil {
		return l, usageError{err}
	}
	return l, nil
}

// initRados creates a repository whose shards live in RADOS pools.
func (a *app) initRados(ctx context.Context, dir string, o dedup.InitOptions, rf *radosFlags, opts dedup.Options) error {
	loc, err := rf.locator()
	if err != nil {
		return err
	}
	if err := a.checkPools(ctx, loc, o.DataShards, o.ParityShards); err != nil {
		return err
	}
	r, err := dedup.InitWith(ctx, dir, o, loc, opts)
	if err != nil {
		return err
	}
	cfg := r.Config()
	if err := r.Close(); err != nil {
		return fmt.Errorf("close repository: %w", err)
	}
	return a.printInit(dir, cfg, radosShardNames(loc, cfg.DataShards+cfg.ParityShards))
}

// checkPools makes sure every pool exists and warns about pools that add a
// redundancy layer of their own under k+m > 1 shards.
func (a *app) checkPools(ctx context.Context, loc rados.Locator, k, m int) error {
	raw, err := json.Marshal(loc)
	if err != nil {
		return err
	}
	sh, err := rados.OpenShards(ctx, raw)
	if err != nil {
		return err
	}
	defer sh.Close()
	seen := map[string]bool{}
	for _, p := range loc.Pools {
		if seen[p] {
			continue
		}
		seen[p] = true
		size, err := sh.PoolSize(ctx, p)
		if errors.Is(err, rados.ErrPoolNotFound) || ctx.Err() != nil {
			return fmt.Errorf("%w (create it first: ceph osd pool create %s)", err, p)
		}
		if err != nil {
			a.clearProgress()
			fmt.Fprintf(a.stderr, "cairn: warning: could not read the replication size of pool %s (the client needs mon 'allow r'): %v\n", p, err)
			continue
		}
		if w := replicationWarning(p, size, k, m); w != "" {
			a.clearProgress()
			fmt.Fprintln(a.stderr, "cairn: "+w)
		}
	}
	return nil
}

func radosShardNames(loc rados.Locator, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "rados:" + filepath.Join(loc.Pool(i), loc.Namespace, fmt.Sprintf("s%d", i)) + "/"
	}
	return names
}

type connectJSON struct {
	ID           string   `json:"id"`
	Dir          string   `json:"dir"`
	DataShards   int      `json:"data_shards"`
	ParityShards int      `json:"parity_shards"`
	Checkpoints  int      `json:"checkpoints"`
	Shards       []string `json:"shards"`
}

// connectRados writes DIR's locator for an existing repository in RADOS and
// builds its index.
func (a *app) connectRados(ctx context.Context, dir string, rf *radosFlags, opts dedup.Options) error {
	loc, err := rf.locator()
	if err != nil {
		return err
	}
	r, err := dedup.Connect(ctx, dir, loc, opts)
	if err != nil {
		return err
	}
	cfg := r.Config()
	cps, err := r.Checkpoints(ctx)
	if cerr := r.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close repository: %w", cerr)
	}
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(dir)
	out := connectJSON{ID: cfg.ID, Dir: abs, DataShards: cfg.DataShards, ParityShards: cfg.ParityShards,
		Checkpoints: len(cps), Shards: radosShardNames(loc, cfg.DataShards+cfg.ParityShards)}
	switch {
	case a.jsonOut:
		return writeJSON(a.stdout, out)
	case a.quiet:
		_, err = fmt.Fprintln(a.stdout, cfg.ID)
	default:
		_, err = fmt.Fprintf(a.stdout, "connected %s to repository %s (%d data + %d parity shards in RADOS, %d checkpoints)\n",
			abs, cfg.ID, cfg.DataShards, cfg.ParityShards, len(cps))
	}
	return err
}
