package fusefs

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cairn/dedup"
)

// Repository is what a mount needs from a repository; *dedup.Repository
// has it. Both methods must be safe for concurrent use.
type Repository interface {
	Checkpoints(ctx context.Context) ([]*dedup.Checkpoint, error)
	OpenCheckpoint(ctx context.Context, id string) (*dedup.Reader, error)
}

// Options steer a mount. The zero value is a private, read-only mount.
type Options struct {
	// AllowOther lets the members of group GID read the tree: the mount
	// admits other users (FUSE allow_other; for non-root users it needs
	// user_allow_other in /etc/fuse.conf), files become 0440 and
	// directories 0550, of group GID, and the kernel checks those bits
	// (default_permissions). Without it files are 0400 and directories
	// 0500, owned by the user who mounted, and no one else gets in: a
	// volume image holds every secret of the volume, so reading it is
	// granted to one named group, never to all users.
	AllowOther bool
	GID        uint32
	// Refresh is how old the checkpoint list may be before listing a
	// directory reads it again (default 5s).
	Refresh time.Duration
	// Log receives read errors and other problems that cannot be returned
	// (default: discard).
	Log func(format string, args ...any)
	// Debug logs every FUSE request on stderr.
	Debug bool
}

// Timeouts the kernel may cache entries and attributes for. The tree is
// immutable while mounted except that checkpoints appear (listing refreshes
// them; lookups of unknown names are not cached) or are forgotten.
const (
	cacheTimeout  = time.Hour
	latestTimeout = time.Second // the latest link changes with new checkpoints
	maxRead       = 1 << 20     // largest FUSE read request
)

// fsys is the state shared by every node of one mount.
type fsys struct {
	repo Repository
	opts Options
	logf func(format string, args ...any)
	// life is the lifetime of background work (read-ahead): canceled when
	// the file system is unmounted. Requests carry their own contexts.
	life context.Context
	wg   sync.WaitGroup // read-ahead goroutines
	uid  uint32
	gid  uint32
	now  time.Time // mount time: the root's timestamps
	// fileMode and dirMode are the permission bits of every file and
	// directory (see Options.AllowOther).
	fileMode, dirMode uint32

	catMu sync.Mutex
	cat   *catalog
	tried time.Time // last attempt to list checkpoints

	volMu sync.Mutex
	vols  map[string]*volumeSlot // by checkpoint ID
}

// Server is a mounted file system.
type Server struct {
	dir    string
	srv    *fuse.Server
	f      *fsys
	cancel context.CancelFunc
}

// Mount lists repo's checkpoints and mounts them read-only on dir, which
// must be an existing directory that is not a mount point already. It
// returns once the kernel serves the mount. ctx bounds the first listing
// only; the mount lives until Unmount (or `fusermount3 -u dir`).
func Mount(ctx context.Context, repo Repository, dir string, o Options) (*Server, error) {
	abs, err := checkMountPoint(dir)
	if err != nil {
		return nil, err
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	life, cancel := context.WithCancel(context.Background())
	f := &fsys{
		repo: repo, opts: o, logf: logf, life: life,
		uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), now: time.Now(),
		fileMode: 0o400, dirMode: 0o500,
		vols: make(map[string]*volumeSlot),
	}
	if o.AllowOther {
		f.gid, f.fileMode, f.dirMode = o.GID, 0o440, 0o550
	}
	if _, err := f.catalog(ctx, true); err != nil {
		cancel()
		return nil, err
	}
	timeout := cacheTimeout
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:    o.AllowOther,
			FsName:        "cairn",
			Name:          "cairn",
			Options:       []string{"ro", "default_permissions", "nodev", "nosuid"},
			MaxWrite:      maxRead, // also max_read: 1 MiB read requests
			MaxReadAhead:  maxRead,
			MaxBackground: 64,
			DisableXAttrs: true,
			DisableSplice: true, // reads return bytes, never file descriptors
			// As root, mount(2) directly; otherwise (or if that fails)
			// through fusermount3.
			DirectMount:      os.Geteuid() == 0,
			DirectMountFlags: syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
			Debug:            o.Debug,
			Logger:           log.New(logWriter{logf}, "", 0),
		},
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		UID:          f.uid,
		GID:          f.gid,
		Logger:       log.New(logWriter{logf}, "", 0),
	}
	srv, err := fs.Mount(abs, &rootNode{f: f}, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	raiseReadAhead(abs, logf)
	return &Server{dir: abs, srv: srv, f: f, cancel: cancel}, nil
}

// Dir is the absolute mount point.
func (s *Server) Dir() string { return s.dir }

// Unmount unmounts the file system. It fails (and the mount stays) while a
// process uses it: has a file open or its working directory inside.
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", s.dir, err)
	}
	return nil
}

// Detach unmounts lazily (MNT_DETACH): the tree disappears at once and the
// mount ends when its last user lets go; those users' reads then fail.
// The last resort when Unmount keeps failing.
func (s *Server) Detach() error {
	if err := syscall.Unmount(s.dir, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("detach %s: %w", s.dir, err)
	}
	return nil
}

// Wait blocks until the file system is unmounted, by Unmount, Detach or
// `fusermount3 -u`, and its background work has ended.
func (s *Server) Wait() {
	s.srv.Wait()
	s.cancel()
	s.f.wg.Wait()
}

// logWriter adapts Options.Log to a log.Logger for go-fuse's diagnostics.
type logWriter struct{ logf func(string, ...any) }

func (w logWriter) Write(p []byte) (int, error) {
	msg := trimNewline(string(p))
	if isDroppedReply(msg) {
		return len(p), nil
	}
	w.logf("fuse: %s", msg)
	return len(p), nil
}

// isDroppedReply recognises go-fuse's note that the kernel no longer
// wanted a reply (ENOENT on the write: the request was interrupted, or
// the mount is going away while a reader is cut off). Nothing is lost and
// nothing can be done, so it is not worth an operator's attention; go-fuse
// already keeps quiet about it for RELEASE and INTERRUPT.
func isDroppedReply(msg string) bool {
	return strings.HasPrefix(msg, "writer: Write/Writev failed, err: 2=no such file or directory")
}

func trimNewline(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}
