package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cairn/dedup"
)

func newRepoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "repo",
		Short: "Create, connect or upgrade a repository, or rebuild its index",
		Long:  "Commands that act on the repository as a whole.",
		Example: `  cairn --repo /backup/repo repo init
  cairn --repo /backup/repo repo rebuild-index`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
}

func newRepoInitCmd(a *app) *cobra.Command {
	var (
		dataShards, parityShards int
		blockSize, packSize      string
		encrypt, noCompress      bool
		shardDirs                []string
		rf                       radosFlags
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new, empty repository in the --repo directory.

Every object is cut into --data-shards pieces plus --parity-shards
Reed-Solomon parity pieces, each kept in its own shard directory: any
parity-shards of them may be lost or damaged without losing data. By default
the shard directories are DIR/shards/0, DIR/shards/1, ...; --shard-dirs puts
them elsewhere, for example on different disks (give exactly
data-shards + parity-shards directories).

Volumes are cut into --block-size blocks (a power of two from 64KiB to
16MiB), the unit of deduplication, and blocks are stored in packs of about
--pack-size. Sizes take the suffixes KiB, MiB, GiB or plain bytes.

--encrypt encrypts all data with AES-256-GCM under a key protected by a
passphrase: --key-file FILE or $CAIRN_PASSWORD, or, on a terminal, typed
twice. The passphrase cannot be recovered: without it the backups are lost.

The geometry, block size and encryption cannot be changed later.`,
		Example: `  cairn --repo /backup/repo repo init
  cairn --repo /backup/repo repo init --data-shards 4 --parity-shards 2 \
      --shard-dirs /mnt/d0,/mnt/d1,/mnt/d2,/mnt/d3,/mnt/d4,/mnt/d5
  cairn --repo /backup/repo --key-file /etc/cairn/key repo init --encrypt`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.repoDir()
			if err != nil {
				return err
			}
			o := dedup.InitOptions{DataShards: dataShards, ParityShards: parityShards, NoCompress: noCompress}
			if dataShards < 1 {
				return usagef("--data-shards must be at least 1")
			}
			if parityShards < 0 {
				return usagef("--parity-shards must not be negative")
			}
			if o.BlockSize, err = parseSizeFlag("--block-size", blockSize); err != nil {
				return err
			}
			if o.PackSize, err = parseSizeFlag("--pack-size", packSize); err != nil {
				return err
			}
			if err := rf.checkInit(o, len(shardDirs) > 0); err != nil {
				return err
			}
			if n := dataShards + parityShards; len(shardDirs) > 0 && len(shardDirs) != n {
				return usagef("--shard-dirs names %d directories; %d data + %d parity shards need %d", len(shardDirs), dataShards, parityShards, n)
			}
			// Relative shard directories are taken from the working
			// directory, as people expect, not from the repository.
			for i, d := range shardDirs {
				if shardDirs[i], err = filepath.Abs(d); err != nil {
					return err
				}
			}
			if encrypt {
				if o.Password, err = a.newPassphrase(); err != nil {
					return err
				}
			} else if a.keyFile != "" {
				return usagef("--key-file given without --encrypt: pass --encrypt to create an encrypted repository")
			}

			opts := a.options(o.Password, withIndex)
			opts.Log = nil // the new, empty index is "rebuilt": no news
			if rf.set() {
				return a.initRados(cmd.Context(), dir, o, &rf, opts)
			}
			r, err := dedup.Init(cmd.Context(), dir, o, shardDirs, opts)
			if err != nil {
				return err
			}
			cfg := r.Config()
			if err := r.Close(); err != nil {
				return fmt.Errorf("close repository: %w", err)
			}
			return a.printInit(dir, cfg, shardDirs)
		},
	}
	f := cmd.Flags()
	f.IntVar(&dataShards, "data-shards", 4, "number of data shards (k)")
	f.IntVar(&parityShards, "parity-shards", 2, "number of parity shards (m): how many shard directories may be lost")
	f.StringVar(&blockSize, "block-size", "4MiB", "block size, the unit of deduplication: a power of two from 64KiB to 16MiB")
	f.StringVar(&packSize, "pack-size", "32MiB", "target size of the packs blocks are stored in: 1MiB to 1GiB")
	f.BoolVar(&encrypt, "encrypt", false, "encrypt the repository with a passphrase (--key-file, $CAIRN_PASSWORD or asked)")
	f.BoolVar(&noCompress, "no-compress", false, "do not compress blocks")
	f.StringSliceVar(&shardDirs, "shard-dirs", nil, "comma-separated shard directories, data-shards + parity-shards of them (default DIR/shards/N)")
	rf.register(f, "keep the shards in these RADOS pools instead of directories: one pool for all, or data-shards + parity-shards of them (docs/ceph.md)")
	return cmd
}

// newPassphrase returns the passphrase for a new encrypted repository: the
// key file or $CAIRN_PASSWORD, else typed twice on a terminal.
func (a *app) newPassphrase() ([]byte, error) {
	pw, err := a.passphrase()
	if err != nil || pw != nil {
		return pw, err
	}
	fd, ok := a.stdinTerminal()
	if !ok {
		return nil, usagef("--encrypt needs a passphrase: pass --key-file or set CAIRN_PASSWORD (or run on a terminal to type it)")
	}
	pw, err = a.readPassphrase(fd, "New passphrase: ")
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, errors.New("empty passphrase")
	}
	again, err := a.readPassphrase(fd, "Repeat passphrase: ")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pw, again) {
		return nil, errors.New("the passphrases differ")
	}
	return pw, nil
}

type initJSON struct {
	ID           string    `json:"id"`
	Dir          string    `json:"dir"`
	CreatedAt    time.Time `json:"created_at"`
	DataShards   int       `json:"data_shards"`
	ParityShards int       `json:"parity_shards"`
	BlockSize    int       `json:"block_size"`
	PackSize     int       `json:"pack_size"`
	Compression  string    `json:"compression"`
	Encrypted    bool      `json:"encrypted"`
	Shards       []string  `json:"shards"`
}

func (a *app) printInit(dir string, cfg dedup.Config, shardDirs []string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	if len(shardDirs) == 0 {
		for i := 0; i < cfg.DataShards+cfg.ParityShards; i++ {
			shardDirs = append(shardDirs, filepath.Join(abs, "shards", strconv.Itoa(i)))
		}
	}
	if a.jsonOut {
		return writeJSON(a.stdout, initJSON{
			ID: cfg.ID, Dir: abs, CreatedAt: cfg.CreatedAt,
			DataShards: cfg.DataShards, ParityShards: cfg.ParityShards,
			BlockSize: cfg.BlockSize, PackSize: cfg.PackSize, Compression: cfg.Compression,
			Encrypted: cfg.Encryption != nil, Shards: shardDirs,
		})
	}
	if a.quiet {
		_, err := fmt.Fprintln(a.stdout, cfg.ID)
		return err
	}
	fmt.Fprintf(a.stdout, "created repository %s\n", abs)
	var t kv
	t.add("id", "%s", cfg.ID)
	t.add("geometry", "%d data + %d parity shards (survives the loss of any %d)", cfg.DataShards, cfg.ParityShards, cfg.ParityShards)
	t.add("block size", "%s", formatSize(int64(cfg.BlockSize)))
	t.add("pack size", "%s", formatSize(int64(cfg.PackSize)))
	t.add("compression", "%s", cfg.Compression)
	if cfg.Encryption != nil {
		t.add("encryption", "%s, key from passphrase (%s)", cfg.Encryption.Cipher, cfg.Encryption.KDF.Algorithm)
	} else {
		t.add("encryption", "none")
	}
	for i, d := range shardDirs {
		key := ""
		if i == 0 {
			key = "shards"
		}
		t.add(key, "%s", d)
	}
	return t.write(a.stdout)
}

func newRebuildIndexCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rebuild-index",
		Short: "Rebuild the local index from the shard stores",
		Long: `Throw away the local index (DIR/index or --index-dir) and rebuild it by
reading every pack header and checkpoint from the shard stores. The index is
only a cache: run this when it is lost or damaged, or after shard stores were
restored from elsewhere. Packs that cannot be read are reported; run
'cairn verify' and 'cairn repair' for them.`,
		Example: `  cairn --repo /backup/repo repo rebuild-index`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The old index is thrown away unopened: badger can crash
			// on a damaged one.
			return a.withRepo(cmd.Context(), rebuildIndex, func(r *dedup.Repository) error {
				res, ok := r.IndexRebuild()
				if !ok {
					return fmt.Errorf("repository %s was opened without rebuilding its index", r.Dir())
				}
				var err error
				if a.jsonOut {
					err = writeJSON(a.stdout, res)
				} else if !a.quiet {
					_, err = fmt.Fprintf(a.stdout, "index rebuilt: %d packs, %d chunks, %d checkpoints\n", res.Packs, res.Chunks, res.Checkpoints)
				}
				if err == nil && res.BadPacks > 0 {
					err = fmt.Errorf("%d packs could not be read and are not indexed: run `cairn verify`", res.BadPacks)
				}
				return err
			})
		},
	}
}

// parseSize parses a byte size: plain bytes ("65536") or a number with a
// binary suffix KiB, MiB, GiB or TiB (case-insensitive; K, M, G, T are
// accepted as the same). Decimal units (KB, MB) are refused as ambiguous.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, suffix := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("size %q: want a number of bytes or a number with KiB, MiB or GiB", s)
	}
	var shift uint
	switch strings.ToLower(suffix) {
	case "", "b":
	case "k", "kib":
		shift = 10
	case "m", "mib":
		shift = 20
	case "g", "gib":
		shift = 30
	case "t", "tib":
		shift = 40
	case "kb", "mb", "gb", "tb":
		return 0, fmt.Errorf("size %q: use binary units (KiB, MiB, GiB, TiB)", s)
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q (want KiB, MiB, GiB or TiB)", s, suffix)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << shift, nil
}

// parseSizeFlag parses a size flag that must fit an int and be positive.
func parseSizeFlag(name, s string) (int, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, usagef("%s: %v", name, err)
	}
	if n <= 0 || n > math.MaxInt32 {
		return 0, usagef("%s %s: out of range", name, s)
	}
	return int(n), nil
}

func newRepoUpgradeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "upgrade",
		Short: "Move a repository to the current format (framed chunks)",
		Long: `Move a repository written in format 1 (whole chunks) to the current format,
format 2, in which new backups store each chunk as independently compressed
and sealed 128 KiB frames: random reads (NBD exports, FUSE mounts) then
decode only the frames they cover. Only the config is rewritten, in every
shard store; the chunks already stored stay as they are and readable.

Until a repository is upgraded, cairn keeps writing whole chunks into it, so
that the release that created it can still read it. After the upgrade,
releases of cairn older than format 2 refuse the repository (an unsupported
version), rather than misreading it. Upgrading an upgraded repository changes
nothing. If the command is cut off, run it again.`,
		Example: `  cairn --repo /backup/repo repo upgrade
  cairn --repo /backup/repo --json repo upgrade`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withRepo(cmd.Context(), readOnly, func(r *dedup.Repository) error {
				rep, err := r.Upgrade(cmd.Context())
				if err != nil {
					return err
				}
				switch {
				case a.jsonOut:
					return writeJSON(a.stdout, map[string]int{"format_before": rep.From, "format": rep.To})
				case a.quiet:
				case rep.From == rep.To:
					_, err = fmt.Fprintf(a.stdout, "repository %s is at format %d already\n", r.Config().ID, rep.To)
				default:
					_, err = fmt.Fprintf(a.stdout, "repository %s upgraded from format %d to %d: new chunks are stored in frames\n", r.Config().ID, rep.From, rep.To)
				}
				return err
			})
		},
	}
}
