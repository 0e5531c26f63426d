package appliance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Duration is a time.Duration written as "90s", "5m" in the config file.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is the appliance configuration (docs/api.md lists every key).
type Config struct {
	// Listen is the API address (default 127.0.0.1:8799, Karbor's port).
	Listen string `json:"listen"`
	// DataDir holds the state store, the default repository, volumes and
	// restores (default /var/lib/cairn).
	DataDir string `json:"data_dir"`
	// Repository is the directory of each project's repository; it must
	// contain {project_id} (default DATA_DIR/projects/{project_id}/repo).
	// A project's repository is created on its first protection,
	// encrypted when PasswordFile is set.
	Repository string `json:"repository"`
	// RepositoryPools, if set, keep the projects' shards in these RADOS
	// pools ("POOL", one for all shards or one per shard), each project
	// in its own namespace; Repository then holds only the locator and
	// the index. Needs a build with Ceph support.
	RepositoryPools []string `json:"repository_pools"`
	// RepositoryNamespace is the RADOS namespace of a project's shards; it
	// must contain {project_id} (default "cairn-{project_id}").
	RepositoryNamespace string `json:"repository_namespace"`
	// DataShards and ParityShards shape new project repositories
	// (default 4 and 2, as cairn repo init).
	DataShards   int `json:"data_shards"`
	ParityShards int `json:"parity_shards"`
	// PasswordFile, if set, holds the passphrase of the (encrypted)
	// repositories, read as the CLI's --key-file: the trailing newline is
	// dropped and an empty file is refused.
	PasswordFile string `json:"password_file"`
	// Auth is "noauth" (the project in the URL is taken as given and any
	// token is accepted) or "keystone" (tokens are validated by Keystone).
	Auth string `json:"auth"`
	// Keystone configures auth "keystone".
	Keystone KeystoneConfig `json:"keystone"`
	// FileRoots are the directories whose files are protectable
	// (default [DATA_DIR/volumes]).
	FileRoots []string `json:"file_roots"`
	// FileDevices makes block device nodes in FileRoots protectable too;
	// by default only regular files are (never symlinks).
	FileDevices bool `json:"file_devices"`
	// RestoreDir receives restores without a target (DATA_DIR/restores).
	RestoreDir string `json:"restore_dir"`
	// RBDPools are the Ceph pools ("POOL" or "POOL/NAMESPACE", may
	// contain {project_id}) whose RBD images are protectable; empty (the
	// default) turns the RBD plugin off. Needs a build with Ceph support.
	RBDPools []string `json:"rbd_pools"`
	// CephConf, CephID and CephKeyring say how to reach the cluster
	// (default: librados's, i.e. $CEPH_CONF or /etc/ceph/ceph.conf,
	// client.admin, the keyring the configuration names).
	CephConf    string `json:"ceph_conf"`
	CephID      string `json:"ceph_id"`
	CephKeyring string `json:"ceph_keyring"`
	// Cloud, when set, turns on the OpenStack plugins (OS::Cinder::Volume,
	// OS::Glance::Image, OS::Neutron::Network)
	// with these credentials and the Ceph cluster of ceph_conf.
	Cloud *CloudConfig `json:"cloud"`
	// Workers bounds concurrent jobs (default 2).
	Workers int `json:"workers"`
	// ProjectMaxQueued bounds the jobs of one project waiting for a
	// worker; more are refused with ErrBusy (default 64).
	ProjectMaxQueued int `json:"project_max_queued"`
	// ProjectMaxRunning bounds the jobs of one project running at once,
	// so the other workers stay free for other projects (default
	// max(1, workers/2)).
	ProjectMaxRunning int `json:"project_max_running"`
	// MinInterval is the shortest period a trigger may have (default 60s).
	MinInterval Duration `json:"min_interval"`
	// Tick is how often the operation engine looks for due triggers
	// (default 1s).
	Tick Duration `json:"tick"`
	// PruneInterval is how often the repository is pruned (default 24h;
	// negative disables).
	PruneInterval Duration `json:"prune_interval"`
	// PruneGrace is passed to prune (default 1h).
	PruneGrace Duration `json:"prune_grace"`
	// PlanQuota is the default plans quota per project (default 50).
	PlanQuota int `json:"plan_quota"`
	// DefaultProject is the project the cairn CLI (cairn plan/checkpoint)
	// uses when --project is not given (default "local"). In noauth the
	// daemon itself serves whatever project the URL names.
	DefaultProject string `json:"default_project"`
	// ServerID is the Nova server UUID of the appliance VM, which the
	// image's first-boot step reads from the config drive or metadata
	// service; plugins that attach volumes to the appliance name it.
	// /healthz reports it. Empty outside a cloud.
	ServerID string `json:"server_id,omitempty"`
	// ConfigError, if set, says why the appliance has no usable
	// configuration (written by `cairn appliance configure` when the
	// cloud gave none): cairn serve then does not start the appliance,
	// and with --stay-up answers /healthz with this reason.
	ConfigError string `json:"config_error,omitempty"`
}

// DefaultConfig returns the embedded default configuration for dataDir.
func DefaultConfig(dataDir string) Config {
	c := Config{DataDir: dataDir}
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8799"
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/cairn"
	}
	if c.Repository == "" {
		c.Repository = filepath.Join(c.DataDir, "projects", "{project_id}", "repo")
	}
	if c.RepositoryNamespace == "" {
		c.RepositoryNamespace = "cairn-{project_id}"
	}
	if c.Auth == "" {
		c.Auth = "noauth"
	}
	if len(c.FileRoots) == 0 {
		c.FileRoots = []string{filepath.Join(c.DataDir, "volumes")}
	}
	if c.RestoreDir == "" {
		c.RestoreDir = filepath.Join(c.DataDir, "restores")
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.ProjectMaxQueued == 0 {
		c.ProjectMaxQueued = 64
	}
	if c.ProjectMaxRunning == 0 {
		c.ProjectMaxRunning = max(1, c.Workers/2)
	}
	if c.MinInterval == 0 {
		c.MinInterval = Duration(time.Minute)
	}
	if c.Tick <= 0 {
		c.Tick = Duration(time.Second)
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = Duration(24 * time.Hour)
	}
	if c.PruneGrace == 0 {
		c.PruneGrace = Duration(time.Hour)
	}
	if c.PlanQuota <= 0 {
		c.PlanQuota = 50
	}
	if c.DefaultProject == "" {
		c.DefaultProject = "local"
	}
	// rbd_pools and the ceph_* keys stay empty: no RBD plugin, and
	// librados's own defaults when there is one.
}

// LoadConfig reads a JSON config file; unknown keys are an error. Flags
// given on the command line override the file (apply them, then Fill).
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a JSON config; unknown keys are an error.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	return c, nil
}

// Fill sets every unset key to its default.
func (c *Config) Fill() error {
	if c.ConfigError != "" {
		return fmt.Errorf("no usable configuration: %s: %w", c.ConfigError, ErrInvalid)
	}
	c.fill()
	if !strings.Contains(c.Repository, "{project_id}") {
		return fmt.Errorf("repository %q must contain {project_id}: each project has a repository of its own (for example %q): %w",
			c.Repository, filepath.Join(c.Repository, "{project_id}"), ErrInvalid)
	}
	if len(c.RepositoryPools) > 0 && !strings.Contains(c.RepositoryNamespace, "{project_id}") {
		return fmt.Errorf("repository_namespace %q must contain {project_id}: each project's shards live in a namespace of their own: %w",
			c.RepositoryNamespace, ErrInvalid)
	}
	if c.DataShards < 0 || c.ParityShards < 0 || c.ParityShards > 0 && c.DataShards == 0 {
		return fmt.Errorf("data_shards %d, parity_shards %d: give data_shards ≥ 1 with parity_shards ≥ 0, or neither: %w", c.DataShards, c.ParityShards, ErrInvalid)
	}
	if c.ProjectMaxQueued < 0 || c.ProjectMaxRunning < 0 {
		return fmt.Errorf("project_max_queued %d, project_max_running %d: want positive numbers (0 or absent for the default): %w",
			c.ProjectMaxQueued, c.ProjectMaxRunning, ErrInvalid)
	}
	if c.Cloud != nil {
		if c.Cloud.ServerID == "" {
			c.Cloud.ServerID = c.ServerID
		}
		if err := c.Cloud.check(); err != nil {
			return err
		}
	}
	switch c.Auth {
	case "noauth":
	case "keystone":
		k := &c.Keystone
		if k.AuthURL == "" || k.Username == "" || k.PasswordFile == "" {
			return fmt.Errorf("auth \"keystone\" needs keystone.auth_url, keystone.username and keystone.password_file: %w", ErrInvalid)
		}
		// Unset keys get their defaults from api.NewKeystone.
	default:
		return fmt.Errorf("auth %q: use \"noauth\" or \"keystone\": %w", c.Auth, ErrInvalid)
	}
	return nil
}

// KeystoneConfig is the service user that validates tokens, as in
// keystonemiddleware's [keystone_authtoken].
type KeystoneConfig struct {
	// AuthURL is Keystone's v3 endpoint, e.g. http://keystone:5000/v3.
	AuthURL  string `json:"auth_url"`
	Username string `json:"username"`
	// PasswordFile holds the service user's password (trailing newline
	// ignored).
	PasswordFile string `json:"password_file"`
	ProjectName  string `json:"project_name"`
	// UserDomainName and ProjectDomainName default to "Default".
	UserDomainName    string `json:"user_domain_name"`
	ProjectDomainName string `json:"project_domain_name"`
	// AdminRoles may act on every project and set quotas (default
	// ["admin"]), when held in AdminProject or on a system-scoped token.
	AdminRoles []string `json:"admin_roles"`
	// AdminProject is the project, by ID or by name, in which AdminRoles
	// count; empty: only system-scoped tokens are administrators.
	AdminProject string `json:"admin_project"`
	// AdminProjectDomain is AdminProject's domain, by name or ID, when it
	// is named (default "Default").
	AdminProjectDomain string `json:"admin_project_domain"`
	// CacheTTL is how long a validated (or refused) token is remembered
	// (default 5m): a revoked token works at most this long.
	CacheTTL Duration `json:"cache_ttl"`
}

// CloudConfig is the OpenStack user cairn acts as. It must hold a role
// (member is enough) in every project whose volumes cairn protects:
// cairn asks Keystone for a token scoped to the project of each job, so
// Cinder shows and lets it change that project's volumes only. The runs
// of a scheduled operation a Keystone user created act through that
// user's trust instead (trusts.go) and need no role of their own.
type CloudConfig struct {
	// Cloud names an entry of clouds.yaml; then the keys below are not
	// used.
	Cloud   string `json:"cloud"`
	AuthURL string `json:"auth_url"`
	// Username and PasswordFile (trailing newline ignored) of the user.
	Username     string `json:"username"`
	PasswordFile string `json:"password_file"`
	// UserDomainName defaults to "Default".
	UserDomainName string `json:"user_domain_name"`
	// Region of the endpoints (default: the first).
	Region string `json:"region"`
	// WaitTimeout bounds each wait for a Cinder or Nova status (default 5m).
	WaitTimeout Duration `json:"wait_timeout"`
	// ImageSpoolDir holds a Glance image while it is streamed through
	// the Glance API into the repository (default the system's temporary
	// directory); it needs room for the largest such image.
	ImageSpoolDir string `json:"image_spool_dir"`
	// NovaEphemeralPool is Nova's images_rbd_pool, where it keeps
	// RBD-backed ephemeral disks (default "vms").
	NovaEphemeralPool string `json:"nova_ephemeral_pool"`
	// ServerID is the appliance's own Nova server, to which the attach
	// read path attaches volumes (default: the top-level server_id, which
	// the image's first-boot step takes from the config drive or metadata
	// service). Empty: no attach path.
	ServerID string `json:"server_id"`
	// DeviceDir is where the devices of attached volumes appear, named by
	// serial (default /dev/disk/by-id).
	DeviceDir string `json:"device_dir"`
	// DeviceWait bounds the wait for an attached volume's device
	// (default 2m).
	DeviceWait Duration `json:"device_wait"`
	// ReadPath is the Cinder plugin's read path when a protection or
	// restore names none: "direct" or "attach"; empty (the default):
	// direct for RBD volumes, attach for others.
	ReadPath string `json:"read_path"`
}

func (c *CloudConfig) check() error {
	if c.Cloud == "" && (c.AuthURL == "" || c.Username == "" || c.PasswordFile == "") {
		return fmt.Errorf("cloud needs cloud (a clouds.yaml entry) or auth_url, username and password_file: %w", ErrInvalid)
	}
	switch c.ReadPath {
	case "", "direct":
	case "attach":
		if c.ServerID == "" {
			return fmt.Errorf("cloud.read_path \"attach\" needs the appliance's own Nova server: cloud.server_id (or server_id): %w", ErrInvalid)
		}
	default:
		return fmt.Errorf("cloud.read_path %q: want \"direct\" or \"attach\": %w", c.ReadPath, ErrInvalid)
	}
	if c.DeviceWait < 0 {
		return fmt.Errorf("cloud.device_wait %s: want a positive duration: %w", time.Duration(c.DeviceWait), ErrInvalid)
	}
	return nil
}
