package dedup

import (
	"bytes"
	"fmt"
	"os"
)

// ReadKeyFile reads a repository passphrase from path: the file's bytes
// without the trailing line break, so that `echo secret > key` works. An
// empty passphrase is refused: it would encrypt with a key anyone can
// derive. The CLI's --key-file and the appliance's password_file both read
// it here, so one file opens a repository from both.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("key file %s is empty: write the passphrase into it", path)
	}
	return b, nil
}
