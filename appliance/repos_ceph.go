//go:build ceph

package appliance

import (
	"context"
	"errors"

	"cairn/dedup"
	"cairn/dedup/store/rados"
	"cairn/plugins"
)

// initRados creates project's repository in the configured pools, in the
// project's own RADOS namespace; dir keeps its locator and index. When
// the namespace already holds the project's repository (the appliance's
// data volume was replaced), dir is connected to it instead.
func (s *repoSet) initRados(ctx context.Context, project, dir string, io dedup.InitOptions, opts dedup.Options) (*dedup.Repository, error) {
	ns, err := plugins.ForProject(s.cfg.RepositoryNamespace, project)
	if err != nil {
		return nil, err
	}
	loc, err := rados.NewLocator(s.cfg.RepositoryPools, ns, rados.ConnOptions{Conf: s.cfg.CephConf, ID: s.cfg.CephID, Keyring: s.cfg.CephKeyring})
	if err != nil {
		return nil, err
	}
	r, err := dedup.Connect(ctx, dir, loc, opts)
	if err == nil {
		s.log.Info("connected to the project's repository in RADOS", "project", project, "pools", loc.Pools, "namespace", ns)
		return r, nil
	}
	if !errors.Is(err, dedup.ErrNoRepository) {
		return nil, err
	}
	s.log.Info("creating the project's repository in RADOS", "project", project, "pools", loc.Pools, "namespace", ns)
	return dedup.InitWith(ctx, dir, io, loc, opts)
}
