package appliance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"cairn/dedup"
	"cairn/plugins"
)

// repoSet holds one repository per project. Each has its own chunk-ID key,
// index and (when encrypted) data key, so nothing one project stores can
// be probed through another's dedup, statistics, mount or export.
//
// A project's repository is created the first time the project needs one
// and stays open while a job uses it; at most maxIdle unused ones stay
// open besides, so ten thousand projects do not hold ten thousand badger
// indexes.
type repoSet struct {
	cfg Config
	pw  []byte
	now func() time.Time
	log *slog.Logger

	mu    sync.Mutex
	open  map[string]*projectRepo
	clock uint64 // orders idle repositories for eviction
}

type projectRepo struct {
	repo *dedup.Repository
	// ready is closed once repo (or err) is set: callers for a project
	// whose repository is being opened wait on it rather than open twice
	// (badger allows one handle per index).
	ready   chan struct{}
	err     error
	users   int
	lastUse uint64
	// freeing marks a handle opened for prune (dedup.Options.FreesSpace):
	// it may write into the space reserved for freeing space, so no job
	// shares it; jobs wait for closed, which release closes once the
	// prune is done with it.
	freeing bool
	closed  chan struct{}
}

// maxIdleRepos bounds the repositories kept open with no job using them.
const maxIdleRepos = 8

// projectCacheBytes is the decoded-chunk cache of one project's
// repository: smaller than the CLI's, since many may be open at once.
const projectCacheBytes = 64 << 20

func newRepoSet(cfg Config, pw []byte, now func() time.Time, log *slog.Logger) *repoSet {
	return &repoSet{cfg: cfg, pw: pw, now: now, log: log, open: map[string]*projectRepo{}}
}

// dir is the directory of project's repository (the locator and index
// when its shards live in RADOS).
func (s *repoSet) dir(project string) (string, error) {
	d, err := plugins.ForProject(s.cfg.Repository, project)
	if err != nil {
		return "", fmt.Errorf("repository of project %q: %w: %w", project, ErrInvalid, err)
	}
	return d, nil
}

// get returns project's repository, opening or creating it, and a release
// function the caller calls when done with it.
func (s *repoSet) get(ctx context.Context, project string) (*dedup.Repository, func(), error) {
	return s.acquire(ctx, project, false)
}

// acquire is get for a job (freeing false) or a prune (freeing true). A
// prune shares a handle a job has open; when it opens one itself, it
// opens it as freeing space, so that it works on a full disk, and jobs
// wait until it is closed rather than write through it.
func (s *repoSet) acquire(ctx context.Context, project string, freeing bool) (*dedup.Repository, func(), error) {
	s.mu.Lock()
	o := s.open[project]
	for o != nil && o.freeing && !freeing {
		closed := o.closed
		s.mu.Unlock()
		select {
		case <-closed:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		s.mu.Lock()
		o = s.open[project]
	}
	if freeing && o != nil && !o.freeing && o.users == 0 && o.repo != nil {
		// An idle job handle refuses writes near a full disk, where a
		// prune must work: reopen it as freeing space.
		if err := o.repo.Close(); err != nil {
			s.log.Error("close project repository", "project", project, "err", err)
		}
		delete(s.open, project)
		o = nil
	}
	if o == nil {
		o = &projectRepo{ready: make(chan struct{}), freeing: freeing}
		if freeing {
			o.closed = make(chan struct{})
		}
		s.open[project] = o
		o.users++
		s.mu.Unlock()
		o.repo, o.err = s.openProject(ctx, project, freeing)
		s.mu.Lock()
		if o.err != nil {
			delete(s.open, project) // the next caller tries again
			if o.closed != nil {
				close(o.closed)
			}
		}
		close(o.ready)
		s.mu.Unlock()
	} else {
		o.users++
		s.mu.Unlock()
		select {
		case <-o.ready:
		case <-ctx.Done():
			s.release(project, o)
			return nil, nil, ctx.Err()
		}
	}
	if o.err != nil {
		return nil, nil, o.err
	}
	var once sync.Once
	return o.repo, func() { once.Do(func() { s.release(project, o) }) }, nil
}

// release drops a user of o and closes the least recently used idle
// repositories beyond maxIdleRepos.
func (s *repoSet) release(project string, o *projectRepo) {
	s.mu.Lock()
	o.users--
	s.clock++
	o.lastUse = s.clock
	if o.freeing && o.users == 0 && o.repo != nil {
		// Closed at once: the next job opens the repository with the
		// free-space checks of a job.
		if err := o.repo.Close(); err != nil {
			s.log.Error("close project repository", "project", project, "err", err)
		}
		delete(s.open, project)
		close(o.closed)
		s.mu.Unlock()
		return
	}
	var idle []string
	for p, r := range s.open {
		if r.users == 0 && r.repo != nil {
			idle = append(idle, p)
		}
	}
	// Closed under mu: a get for the same project must not open the
	// index before this handle has let go of it.
	defer s.mu.Unlock()
	if len(idle) <= maxIdleRepos {
		return
	}
	slices.SortFunc(idle, func(a, b string) int { return cmp.Compare(s.open[a].lastUse, s.open[b].lastUse) })
	for _, p := range idle[:len(idle)-maxIdleRepos] {
		if err := s.open[p].repo.Close(); err != nil {
			s.log.Error("close project repository", "project", p, "err", err)
		}
		delete(s.open, p)
	}
}

// openProject opens project's repository, creating it on first use;
// freeing opens it for prune (dedup.Options.FreesSpace).
func (s *repoSet) openProject(ctx context.Context, project string, freeing bool) (*dedup.Repository, error) {
	dir, err := s.dir(project)
	if err != nil {
		return nil, err
	}
	opts := dedup.Options{Password: s.pw, Now: s.now, CacheBytes: projectCacheBytes, FreesSpace: freeing,
		Log: func(f string, args ...any) { s.log.Info(fmt.Sprintf(f, args...), "project", project) }}
	r, err := dedup.Open(ctx, dir, opts)
	if !errors.Is(err, dedup.ErrNoRepository) && !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			return nil, fmt.Errorf("repository of project %s (%s): %w", project, dir, err)
		}
		return r, nil
	}
	io := dedup.InitOptions{Password: s.pw, DataShards: s.cfg.DataShards, ParityShards: s.cfg.ParityShards}
	if len(s.cfg.RepositoryPools) == 0 {
		s.log.Info("creating the project's repository", "project", project, "dir", dir)
		r, err = dedup.Init(ctx, dir, io, nil, opts)
	} else {
		r, err = s.initRados(ctx, project, dir, io, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("create the repository of project %s (%s): %w", project, dir, err)
	}
	return r, nil
}

// Projects lists the projects that have a repository, sorted.
func (s *repoSet) projects() ([]string, error) {
	pattern := strings.ReplaceAll(s.cfg.Repository, plugins.ProjectPlaceholder, "*")
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("list project repositories: %w", err)
	}
	var out []string
	for _, m := range matches {
		p, ok := projectOf(s.cfg.Repository, m)
		if !ok {
			continue
		}
		if d, err := s.dir(p); err != nil || d != m {
			continue
		}
		if _, err := os.Stat(filepath.Join(m, "cairn.json")); err == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// projectOf recovers the project ID from path, an instance of tmpl.
func projectOf(tmpl, path string) (string, bool) {
	pre, post, _ := strings.Cut(tmpl, plugins.ProjectPlaceholder)
	if !strings.HasPrefix(path, pre) || !strings.HasSuffix(path, post) || len(path) < len(pre)+len(post) {
		return "", false
	}
	return path[len(pre) : len(path)-len(post)], true
}

// each runs fn on the repositories of projects (every project's when
// projects is nil) in turn, skipping projects that have none; freeing
// opens them for prune (acquire).
func (s *repoSet) each(ctx context.Context, projects []string, freeing bool, fn func(project string, r *dedup.Repository) error) error {
	if projects == nil {
		ps, err := s.projects()
		if err != nil {
			return err
		}
		projects = ps
	}
	var errs []error
	for _, p := range projects {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !s.exists(p) {
			continue
		}
		r, release, err := s.acquire(ctx, p, freeing)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := fn(p, r); err != nil {
			errs = append(errs, fmt.Errorf("project %s: %w", p, err))
		}
		release()
	}
	return errors.Join(errs...)
}

// close closes every open repository; callers have stopped all jobs.
func (s *repoSet) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for p, o := range s.open {
		if o.repo != nil {
			errs = append(errs, o.repo.Close())
		}
		delete(s.open, p)
	}
	return errors.Join(errs...)
}

// exists reports whether project has a repository already.
func (s *repoSet) exists(project string) bool {
	dir, err := s.dir(project)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "cairn.json"))
	return err == nil
}

// ProjectRepository is the directory of project's repository in a data
// directory laid out by the embedded default; tools outside the daemon
// (cairn mount, nbd serve, files) open it through this.
func ProjectRepository(dataDir, project string) (string, error) {
	c := DefaultConfig(dataDir)
	return (&repoSet{cfg: c}).dir(project)
}

// ProjectsIn lists the projects with a repository in a data directory
// laid out by the embedded default.
func ProjectsIn(dataDir string) ([]string, error) {
	return (&repoSet{cfg: DefaultConfig(dataDir)}).projects()
}

// IsDataDir reports whether dir is an appliance data directory (one that
// holds the state or per-project repositories) rather than a repository.
func IsDataDir(dir string) bool {
	for _, d := range []string{"projects", "state"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}
