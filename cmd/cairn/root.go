package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"cairn/appliance"
	"cairn/dedup"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// app is one invocation of the CLI: its streams, environment and the values
// of the global flags. Commands are closures over it, so tests can run the
// whole CLI in process.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	// Global flags.
	repoFlag string
	project  string
	keyFile  string
	indexDir string
	jsonOut  bool
	quiet    bool
	noSync   bool

	line *progressLine // the progress line being drawn on stderr, if any
}

// usageError marks an error that is the caller's mistake in calling cairn
// (exit status 2) rather than a failure of the operation.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// usageArgs makes a positional-argument check report a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// run executes the CLI with args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	registerBackends()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	a.clearProgress()
	if err == nil {
		return exitOK
	}
	return a.reportError(ctx, cmd, err)
}

// reportError prints err as one line on stderr and picks the exit status.
func (a *app) reportError(ctx context.Context, cmd *cobra.Command, err error) int {
	var ue usageError
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		fmt.Fprintln(a.stderr, "cairn: interrupted")
		return exitInterrupted
	case errors.As(err, &ue):
		msg := oneLine(err.Error())
		if cmd != nil {
			msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
		}
		fmt.Fprintln(a.stderr, "cairn: "+msg)
		return exitUsage
	}
	fmt.Fprintln(a.stderr, "cairn: "+oneLine(err.Error()))
	return exitFailure
}

// oneLine folds a possibly multi-line message (errors.Join) into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}

// newRootCmd builds the whole command tree. It is the one place commands are
// wired together.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Block-level, deduplicating, erasure-coded backups of disk images and block devices",
		Long: `cairn backs up disk images and block devices into a repository of
deduplicated, compressed, optionally encrypted blocks, spread over several
shard directories with Reed-Solomon parity so that losing some of them loses
nothing.

The repository is chosen with --repo or $CAIRN_REPO. An encrypted repository
needs its passphrase: --key-file FILE (the file's contents, without the
trailing newline) or $CAIRN_PASSWORD.`,
		Example: `  export CAIRN_REPO=/backup/repo
  cairn repo init --data-shards 4 --parity-shards 2
  cairn backup --source /var/lib/images/vm1.img
  cairn checkpoints
  cairn restore 0197c2a4 --to /tmp/vm1.img`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Positional arguments reaching the root are an unknown command;
		// checking them here (rather than in cobra's fallback) makes it a
		// usage error.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return unknownCommand(cmd, args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		// Required flags and flag groups are checked here so that a missing
		// flag is a usage error and is reported before the repository is
		// opened.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return usageError{err}
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return usageError{err}
			}
			return nil
		},
		CompletionOptions:          cobra.CompletionOptions{HiddenDefaultCmd: true},
		SuggestionsMinimumDistance: 2,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&a.repoFlag, "repo", "", "repository directory (default $CAIRN_REPO)")
	pf.StringVar(&a.project, "project", "", "with --repo naming an appliance data directory: open only this project's repository")
	pf.StringVar(&a.keyFile, "key-file", "", "file holding the repository passphrase (default $CAIRN_PASSWORD)")
	pf.StringVar(&a.indexDir, "index-dir", "", "directory of the local index (default DIR/index)")
	pf.BoolVar(&a.jsonOut, "json", false, "print machine-readable JSON on stdout")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print no progress and only essential output")
	pf.BoolVar(&a.noSync, "no-sync", false, "skip fsync in the shard stores (tests and benchmarks only)")
	_ = pf.MarkHidden("no-sync")

	repo := newRepoCmd(a)
	repo.AddCommand(newRepoInitCmd(a), newRebuildIndexCmd(a), newRepoConnectCmd(a), newRepoUpgradeCmd(a))
	root.AddCommand(
		repo,
		newBackupCmd(a),
		newRestoreCmd(a),
		newCheckpointsCmd(a),
		newVerifyCmd(a),
		newRepairCmd(a),
		newForgetCmd(a),
		newPruneCmd(a),
		newStatsCmd(a),
		newVersionCmd(a),
	)
	root.AddCommand(mountCommands(a)...)
	root.AddCommand(nbdCommands(a)...)
	root.AddCommand(serveCommands(a)...)
	root.AddCommand(applianceCommands(a)...)
	root.AddCommand(imageCommands(a)...)
	root.AddCommand(adminCommands(a)...)
	return root
}

// unknownCommand is the usage error for a command name that does not exist.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usageError{errors.New(msg)}
}

// groupRunE is the RunE of a command that only groups subcommands.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return unknownCommand(cmd, args[0])
	}
	return cmd.Help()
}

// repoDir is the repository directory from --repo or $CAIRN_REPO, or,
// when that is an appliance data directory, the --project's repository
// in it.
func (a *app) repoDir() (string, error) {
	dir := a.repoFlag
	if dir == "" {
		dir = a.getenv("CAIRN_REPO")
	}
	if dir == "" {
		return "", usagef("no repository: pass --repo or set CAIRN_REPO")
	}
	if !appliance.IsDataDir(dir) {
		if a.project != "" {
			return "", usagef("--project applies to an appliance data directory (one with projects/ and state/); %s is not one", dir)
		}
		return dir, nil
	}
	// Projects never share a repository, so a tool pointed at the
	// appliance opens exactly one project's.
	if a.project == "" {
		ps, _ := appliance.ProjectsIn(dir)
		return "", usagef("%s is an appliance data directory with one repository per project: pass --project PROJECT (projects with a repository: %s)",
			dir, strings.Join(append(ps, "none")[:max(1, len(ps))], ", "))
	}
	r, err := appliance.ProjectRepository(dir, a.project)
	if err != nil {
		return "", usageError{err}
	}
	if _, err := os.Stat(filepath.Join(r, "cairn.json")); err != nil {
		return "", fmt.Errorf("project %s has no repository in %s (it has protected nothing yet): %w", a.project, dir, dedup.ErrNoRepository)
	}
	return r, nil
}

// passphrase returns the key from --key-file or $CAIRN_PASSWORD, or nil.
func (a *app) passphrase() ([]byte, error) {
	if a.keyFile != "" {
		return dedup.ReadKeyFile(a.keyFile)
	}
	if p := a.getenv("CAIRN_PASSWORD"); p != "" {
		return []byte(p), nil
	}
	return nil, nil
}

// stdinTerminal returns the file descriptor of stdin when it is a terminal.
func (a *app) stdinTerminal() (int, bool) {
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	return int(f.Fd()), true
}

// readPassphrase prompts on stderr and reads a passphrase from the terminal
// without echo.
func (a *app) readPassphrase(fd int, prompt string) ([]byte, error) {
	fmt.Fprint(a.stderr, prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return p, nil
}

// openMode says whether a command needs the local index.
type openMode int

const (
	// withIndex opens the badger index (backups, maintenance). Only one
	// process at a time may hold it.
	withIndex openMode = iota
	// readOnly opens without the index: listing and restoring work from
	// the shard stores alone and may run beside a backup.
	readOnly
	// rebuildIndex discards the index unopened and rebuilds it while
	// opening the repository (repo rebuild-index).
	rebuildIndex
	// freeingSpace opens the index for forget and prune, which may use
	// the space reserved beside it when the disk is full.
	freeingSpace
)

func (a *app) options(password []byte, mode openMode) dedup.Options {
	return dedup.Options{
		Password: password,
		IndexDir: a.indexDir,
		NoIndex:  mode == readOnly,
		// A damaged index may be beyond badger's opening, so the
		// command that replaces it does not try.
		RebuildIndex: mode == rebuildIndex,
		FreesSpace:   mode == freeingSpace,
		NoSync:       a.noSync,
		Log:          a.notef,
	}
}

// openRepo opens the repository named by the global flags. When the
// repository is encrypted, no key was given and stdin is a terminal, it asks
// for the passphrase.
func (a *app) openRepo(ctx context.Context, mode openMode) (*dedup.Repository, error) {
	dir, err := a.repoDir()
	if err != nil {
		return nil, err
	}
	pw, err := a.passphrase()
	if err != nil {
		return nil, err
	}
	r, err := dedup.Open(ctx, dir, a.options(pw, mode))
	if errors.Is(err, dedup.ErrNeedKey) && pw == nil {
		if fd, ok := a.stdinTerminal(); ok {
			if pw, err = a.readPassphrase(fd, "Passphrase for "+dir+": "); err != nil {
				return nil, err
			}
			r, err = dedup.Open(ctx, dir, a.options(pw, mode))
		}
	}
	return r, err
}

// withRepo opens the repository, runs fn and closes it, reporting a close
// failure only when fn succeeded.
func (a *app) withRepo(ctx context.Context, mode openMode, fn func(*dedup.Repository) error) (err error) {
	r, err := a.openRepo(ctx, mode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close repository: %w", cerr)
		}
	}()
	return fn(r)
}

// notef prints an informational note on stderr unless --quiet.
func (a *app) notef(format string, args ...any) {
	if a.quiet {
		return
	}
	a.clearProgress()
	fmt.Fprintf(a.stderr, "cairn: "+format+"\n", args...)
}
