package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Options configure Configure; the zero value of a field takes the
// appliance's default.
type Options struct {
	EtcDir      string // EtcDir
	DevDir      string // "/dev": by-label and by-id live below it
	RunDir      string // "/run/cairn": where a drive is mounted to be read
	MetadataURL string // MetadataURL
	// MetadataWait bounds the tries of the metadata service when no drive
	// is attached (default 60s: DHCP may still be under way).
	MetadataWait time.Duration
	// DataVolumeWait bounds the wait for the data volume's device.
	DataVolumeWait time.Duration
	UID, GID       int // the daemon user, owner of the secrets and the data
	Log            *slog.Logger
}

func (o *Options) fill() {
	if o.EtcDir == "" {
		o.EtcDir = EtcDir
	}
	if o.DevDir == "" {
		o.DevDir = "/dev"
	}
	if o.RunDir == "" {
		o.RunDir = "/run/cairn"
	}
	if o.MetadataURL == "" {
		o.MetadataURL = MetadataURL
	}
	if o.MetadataWait == 0 {
		o.MetadataWait = time.Minute
	}
	if o.DataVolumeWait == 0 {
		o.DataVolumeWait = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Configure reads the cloud's configuration, mounts the data volume and
// writes EtcDir. Whatever goes wrong, it writes a cairn.json, a degraded
// one holding the reason when needed, so that cairn serve --stay-up comes
// up and reports it; the returned error is that reason. Nothing of the
// user data is logged.
func Configure(ctx context.Context, o Options) (Plan, error) {
	o.fill()
	seed, err := FindSeed(ctx, o)
	var p Plan
	if err == nil {
		o.Log.Info("configuration found", "source", seed.Source, "server_id", seed.ServerID)
		p, err = NewPlan(seed, o.EtcDir)
	}
	if err == nil && p.DataVolume != "" {
		err = MountDataVolume(ctx, o, p.DataVolume, p.Config.DataDir)
	}
	if err != nil {
		p = DegradedPlan(seed.ServerID, err)
	}
	if werr := p.Write(o.EtcDir, o.UID, o.GID); werr != nil {
		return p, errors.Join(err, werr)
	}
	if err == nil {
		if err = os.MkdirAll(p.Config.DataDir, 0o750); err == nil {
			err = os.Chown(p.Config.DataDir, o.UID, o.GID)
		}
	}
	return p, err
}

// Drive labels, as Nova (config-2; VFAT drives are upper case) and
// cloud-init's NoCloud (cidata) write them.
var drives = []struct {
	label string
	read  func(string) (Seed, error)
}{
	{"config-2", ReadConfigDrive}, {"CONFIG-2", ReadConfigDrive},
	{"cidata", ReadNoCloud}, {"CIDATA", ReadNoCloud},
}

// FindSeed reads the first cloud source that answers: a config drive, a
// NoCloud drive, then the metadata service.
func FindSeed(ctx context.Context, o Options) (Seed, error) {
	o.fill()
	for _, d := range drives {
		// blkid probes the block devices the kernel knows rather than
		// waiting for udev's by-label links: nothing at boot waits for
		// udev to settle.
		dev, err := exec.CommandContext(ctx, "blkid", "-c", "/dev/null", "-l", "-o", "device", "-t", "LABEL="+d.label).Output()
		if err != nil || len(strings.TrimSpace(string(dev))) == 0 {
			continue
		}
		return readDrive(ctx, o, strings.TrimSpace(string(dev)), d.read)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(o.MetadataWait)
	for {
		s, err := ReadMetadataService(ctx, c, o.MetadataURL)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return Seed{}, fmt.Errorf("no config drive (label config-2), no NoCloud drive (label cidata), and %v: attach a config drive or give the server user data (docs/appliance.md): %w", err, ErrNoSeed)
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// readDrive mounts dev read-only under RunDir, reads it and unmounts it.
func readDrive(ctx context.Context, o Options, dev string, read func(string) (Seed, error)) (Seed, error) {
	dir := filepath.Join(o.RunDir, "seed")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Seed{}, err
	}
	if err := run(ctx, "mount", "-o", "ro,nodev,nosuid,noexec", dev, dir); err != nil {
		return Seed{}, fmt.Errorf("mount config drive %s: %w", dev, err)
	}
	s, err := read(dir)
	if uerr := run(ctx, "umount", dir); uerr != nil && err == nil {
		err = fmt.Errorf("unmount config drive %s: %w", dev, uerr)
	}
	return s, err
}

// SerialPath is where udev puts a virtio disk whose serial is volumeID:
// Nova sets a Cinder volume's serial to its ID, and the virtio-blk serial
// holds at most 20 characters.
func SerialPath(devDir, volumeID string) string {
	serial := volumeID
	if len(serial) > 20 {
		serial = serial[:20]
	}
	return filepath.Join(devDir, "disk", "by-id", "virtio-"+serial)
}

// MountDataVolume waits for the data volume, puts an ext4 file system on
// it when it has none, and mounts it on dataDir. A volume holding another
// file system is refused, never formatted.
func MountDataVolume(ctx context.Context, o Options, volumeID, dataDir string) error {
	o.fill()
	dev := SerialPath(o.DevDir, volumeID)
	deadline := time.Now().Add(o.DataVolumeWait)
	for {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("data volume %s: %s did not appear within %s: attach the volume to this server: %w", volumeID, dev, o.DataVolumeWait, ErrDataVolume)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if mounted(dataDir) {
		return nil
	}
	fsType, err := probe(ctx, dev)
	if err != nil {
		return fmt.Errorf("data volume %s: %w", volumeID, err)
	}
	switch fsType {
	case "ext4":
	case "":
		o.Log.Info("formatting the blank data volume", "volume", volumeID, "device", dev)
		if err := run(ctx, "mkfs.ext4", "-q", "-L", "cairn-data", dev); err != nil {
			return fmt.Errorf("data volume %s: mkfs.ext4: %v: %w", volumeID, err, ErrDataVolume)
		}
	default:
		return fmt.Errorf("data volume %s holds a %s file system, not cairn's ext4: attach a blank volume or cairn's own: %w", volumeID, fsType, ErrDataVolume)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return err
	}
	if err := run(ctx, "mount", "-o", "nodev,nosuid,noexec", dev, dataDir); err != nil {
		return fmt.Errorf("data volume %s: mount on %s: %v: %w", volumeID, dataDir, err, ErrDataVolume)
	}
	o.Log.Info("data volume mounted", "volume", volumeID, "device", dev, "data_dir", dataDir)
	return nil
}

// probe returns the file system type on dev, "" for a blank device. Only
// blkid's "nothing found" (exit 2) counts as blank: any other failure must
// not lead to formatting a volume that holds data.
func probe(ctx context.Context, dev string) (string, error) {
	out, err := exec.CommandContext(ctx, "blkid", "-p", "-o", "value", "-s", "TYPE", dev).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("blkid %s: %w", dev, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func mounted(dir string) bool {
	return exec.Command("mountpoint", "-q", dir).Run() == nil
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}
