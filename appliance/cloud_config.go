package appliance

import (
	"fmt"
	"time"

	"cairn/dedup"
	"cairn/internal/openstack"
)

// cloudConfig turns the cloud section into the client's configuration,
// reading the password file.
func cloudConfig(c *CloudConfig) (openstack.Config, error) {
	oc := openstack.Config{Cloud: c.Cloud, AuthURL: c.AuthURL, Username: c.Username,
		UserDomainName: c.UserDomainName, Region: c.Region, WaitTimeout: time.Duration(c.WaitTimeout)}
	if c.Cloud == "" {
		pw, err := dedup.ReadKeyFile(c.PasswordFile)
		if err != nil {
			return oc, fmt.Errorf("cloud.password_file: %w", err)
		}
		oc.Password = string(pw)
	}
	return oc, nil
}
