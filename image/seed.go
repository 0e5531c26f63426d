package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v2"
)

// Seed is what one cloud source gave the appliance.
type Seed struct {
	// Source names where it came from: "config-2", "cidata" or
	// "metadata-service".
	Source string
	// ServerID is the appliance's own Nova server UUID (meta_data.json's
	// "uuid", NoCloud's instance-id).
	ServerID string
	// UserData is the raw user data; nil when the server has none.
	UserData []byte
}

// maxSeedFile bounds what is read of one file of a source: user data is
// at most 64 KiB in Nova, so anything much larger is not user data.
const maxSeedFile = 1 << 20

// ReadConfigDrive reads a mounted OpenStack config drive at dir.
func ReadConfigDrive(dir string) (Seed, error) {
	s := Seed{Source: "config-2"}
	md, err := readLimited(filepath.Join(dir, "openstack", "latest", "meta_data.json"))
	if err != nil {
		return s, fmt.Errorf("config drive: %w", err)
	}
	if s.ServerID, err = parseMetaData(md); err != nil {
		return s, fmt.Errorf("config drive openstack/latest/meta_data.json: %w", err)
	}
	ud, err := readLimited(filepath.Join(dir, "openstack", "latest", "user_data"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("config drive: %w", err)
	}
	s.UserData = ud
	return s, nil
}

// ReadNoCloud reads a mounted NoCloud drive (label cidata) at dir.
func ReadNoCloud(dir string) (Seed, error) {
	s := Seed{Source: "cidata"}
	md, err := readLimited(filepath.Join(dir, "meta-data"))
	if err != nil {
		return s, fmt.Errorf("NoCloud drive: %w", err)
	}
	if s.ServerID, err = parseNoCloudMeta(md); err != nil {
		return s, fmt.Errorf("NoCloud drive meta-data: %w", err)
	}
	ud, err := readLimited(filepath.Join(dir, "user-data"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("NoCloud drive: %w", err)
	}
	s.UserData = ud
	return s, nil
}

// parseNoCloudMeta returns the instance-id of NoCloud meta-data (YAML).
func parseNoCloudMeta(b []byte) (string, error) {
	var m struct {
		InstanceID string `yaml:"instance-id"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return "", err
	}
	if m.InstanceID == "" {
		return "", errors.New("no instance-id")
	}
	return m.InstanceID, nil
}

// MetadataURL is the OpenStack metadata service as a guest sees it.
const MetadataURL = "http://169.254.169.254/openstack/latest"

// ReadMetadataService asks the metadata service at base (MetadataURL) for
// meta_data.json and user_data; a 404 for user_data means none.
func ReadMetadataService(ctx context.Context, c *http.Client, base string) (Seed, error) {
	s := Seed{Source: "metadata-service"}
	md, err := httpGet(ctx, c, base+"/meta_data.json")
	if err != nil {
		return s, err
	}
	if md == nil {
		return s, fmt.Errorf("metadata service %s: no meta_data.json (404)", base)
	}
	if s.ServerID, err = parseMetaData(md); err != nil {
		return s, fmt.Errorf("metadata service meta_data.json: %w", err)
	}
	if s.UserData, err = httpGet(ctx, c, base+"/user_data"); err != nil {
		return s, err
	}
	return s, nil
}

// parseMetaData returns the server UUID of an OpenStack meta_data.json.
func parseMetaData(b []byte) (string, error) {
	var m struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	if m.UUID == "" {
		return "", errors.New(`no "uuid"`)
	}
	return m.UUID, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSeedFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSeedFile {
		return nil, fmt.Errorf("%s is over %d bytes", path, maxSeedFile)
	}
	return b, nil
}

// httpGet returns the body of url, nil for a 404.
func httpGet(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metadata service: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metadata service: GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSeedFile+1))
	if err != nil {
		return nil, fmt.Errorf("metadata service: GET %s: %w", url, err)
	}
	if len(b) > maxSeedFile {
		return nil, fmt.Errorf("metadata service: %s is over %d bytes", url, maxSeedFile)
	}
	return b, nil
}

// trimmed is s without surrounding blanks; user data often ends in "\n".
func trimmed(s string) string { return strings.TrimSpace(s) }
