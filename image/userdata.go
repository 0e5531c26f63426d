package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	"cairn/appliance"
)

// UserData is the user data of a cairn appliance server (docs/appliance.md):
// cairn serve's configuration plus the secrets it names by file, which the
// appliance writes 0600 for the daemon's user only.
type UserData struct {
	// Config is cairn serve's configuration (docs/api.md); the keys that
	// name a secret's file are filled in from the fields below.
	Config json.RawMessage `json:"config"`
	// CephConf is the text of ceph.conf (mon_host, …).
	CephConf string `json:"ceph_conf"`
	// CephKeyring is the keyring of the cairn Ceph user (config.ceph_id).
	CephKeyring string `json:"ceph_keyring"`
	// KeystonePassword is the password of config.keystone.username.
	KeystonePassword string `json:"keystone_password"`
	// CloudPassword is the password of config.cloud.username, the
	// OpenStack user of the Cinder plugin (docs/openstack.md).
	CloudPassword string `json:"cloud_password"`
	// RepositoryPassword encrypts new project repositories.
	RepositoryPassword string `json:"repository_password"`
	// DataVolume is the ID of the Cinder volume that holds the state; the
	// appliance finds it by its serial, formats it when blank and mounts
	// it on config.data_dir.
	DataVolume string `json:"data_volume"`
	// NBDProject, if set, is the project whose repository cairn-nbd
	// exports over NBD on port 10809.
	NBDProject string `json:"nbd_project"`
}

// Default locations on the appliance.
const (
	EtcDir      = "/etc/cairn"
	ConfigName  = "cairn.json"
	DataDir     = "/var/lib/cairn"
	Listen      = "0.0.0.0:8799"
	AttachedDir = "/dev/cairn-volumes"
	NBDEnvName  = "nbd.env"
)

// File is one file the appliance writes under EtcDir.
type File struct {
	Name   string // relative to EtcDir
	Data   []byte
	Secret bool // 0600, the daemon user's; else 0640 root:daemon group
}

// Plan is what a seed configures: the files to write and the data volume
// to mount before cairn serve starts.
type Plan struct {
	Config     appliance.Config
	Files      []File // cairn.json last
	DataVolume string
	NBDProject string
}

// ParseUserData decodes user data; unknown keys are an error, so a typo
// is reported rather than silently ignored.
func ParseUserData(b []byte) (UserData, error) {
	var u UserData
	if len(bytes.TrimSpace(b)) == 0 {
		return u, fmt.Errorf("the server has no user data: give cairn's configuration as user data (docs/appliance.md): %w", ErrUserData)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return u, fmt.Errorf("user data is not a cairn appliance configuration (a JSON object, docs/appliance.md): %v: %w", err, ErrUserData)
	}
	if dec.More() {
		return u, fmt.Errorf("user data holds more than one JSON value: %w", ErrUserData)
	}
	return u, nil
}

// NewPlan turns a seed into the files of etcDir. A seed without usable
// user data gives an error; DegradedPlan then says why.
func NewPlan(s Seed, etcDir string) (Plan, error) {
	u, err := ParseUserData(s.UserData)
	if err != nil {
		return Plan{}, err
	}
	var cfg appliance.Config
	if len(u.Config) > 0 {
		if cfg, err = appliance.ParseConfig(u.Config); err != nil {
			return Plan{}, fmt.Errorf("user data \"config\": %v: %w", err, ErrUserData)
		}
	}
	p := Plan{DataVolume: trimmed(u.DataVolume), NBDProject: trimmed(u.NBDProject)}
	var cloudPasswordFile string
	if u.CloudPassword != "" {
		if cfg.Cloud == nil {
			return Plan{}, fmt.Errorf("user data gives cloud_password but config has no \"cloud\" (auth_url, username) it belongs to: %w", ErrUserData)
		}
		cloudPasswordFile = cfg.Cloud.PasswordFile
	}
	secrets := []struct {
		key, name, text string
		secret          bool
		dst             *string
	}{
		{"ceph_conf", "ceph.conf", u.CephConf, false, &cfg.CephConf},
		{"ceph_keyring", "ceph.keyring", u.CephKeyring, true, &cfg.CephKeyring},
		{"keystone_password", "keystone-password", u.KeystonePassword, true, &cfg.Keystone.PasswordFile},
		{"repository_password", "repository-password", u.RepositoryPassword, true, &cfg.PasswordFile},
		{"cloud_password", "cloud-password", u.CloudPassword, true, &cloudPasswordFile},
	}
	for _, f := range secrets {
		if f.text == "" {
			continue
		}
		if *f.dst != "" {
			return Plan{}, fmt.Errorf("user data gives both %q and the config key naming its file (%s): give one: %w", f.key, *f.dst, ErrUserData)
		}
		*f.dst = filepath.Join(etcDir, f.name)
		p.Files = append(p.Files, File{Name: f.name, Data: []byte(f.text), Secret: f.secret})
	}
	if u.CloudPassword != "" {
		cfg.Cloud.PasswordFile = cloudPasswordFile
	}
	if cfg.Listen == "" {
		cfg.Listen = Listen
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DataDir
	}
	if len(cfg.FileRoots) == 0 {
		// Attached volumes appear as block device nodes named by serial
		// in AttachedDir (the image's udev rule), so the file plugin
		// protects them by default.
		cfg.FileRoots = []string{filepath.Join(cfg.DataDir, "volumes"), AttachedDir}
		cfg.FileDevices = true
	}
	if cfg.ServerID != "" && cfg.ServerID != s.ServerID {
		return Plan{}, fmt.Errorf("user data config.server_id %q is not this server's UUID %q from %s: leave it out: %w", cfg.ServerID, s.ServerID, s.Source, ErrUserData)
	}
	cfg.ServerID = s.ServerID
	check := cfg
	if err := check.Fill(); err != nil {
		return Plan{}, fmt.Errorf("user data \"config\": %w", err)
	}
	if p.NBDProject != "" {
		env := fmt.Sprintf("CAIRN_NBD_ARGS=--repo %s --project %s\n", cfg.DataDir, p.NBDProject)
		if cfg.PasswordFile != "" {
			env = fmt.Sprintf("CAIRN_NBD_ARGS=--repo %s --project %s --key-file %s\n", cfg.DataDir, p.NBDProject, cfg.PasswordFile)
		}
		p.Files = append(p.Files, File{Name: NBDEnvName, Data: []byte(env)})
	}
	p.Config = cfg
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return Plan{}, err
	}
	p.Files = append(p.Files, File{Name: ConfigName, Data: append(b, '\n')})
	return p, nil
}

// DegradedPlan is the configuration written when the cloud gave none that
// works: cairn serve --stay-up then answers /healthz with reason.
func DegradedPlan(serverID string, reason error) Plan {
	cfg := appliance.Config{Listen: Listen, DataDir: DataDir, ServerID: serverID, ConfigError: reason.Error()}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return Plan{Config: cfg, Files: []File{{Name: ConfigName, Data: append(b, '\n')}}}
}

// managed lists every file a plan may write, so that a secret left out of
// new user data does not linger from an earlier boot.
var managed = []string{"ceph.conf", "ceph.keyring", "keystone-password", "repository-password", "cloud-password", NBDEnvName, ConfigName}

func (p Plan) has(name string) bool {
	return slices.ContainsFunc(p.Files, func(f File) bool { return f.Name == name })
}
