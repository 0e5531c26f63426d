package store

import (
	"fmt"
	"strings"
)

// CheckName reports whether name is a valid object name, returning an error
// wrapping ErrInvalidName if not.
//
// A valid name is a non-empty, relative, slash-separated path whose
// components are non-empty and do not start with '.', and which contains no
// "..", backslash or NUL. The rules are stricter than any one backend needs:
// they keep names safe as file paths (no escaping the store directory, no
// clash with the local store's ".tmp-" files) and identical on every backend.
func CheckName(name string) error {
	var why string
	switch {
	case name == "":
		why = "empty"
	case strings.HasPrefix(name, "/"):
		why = "absolute"
	case strings.Contains(name, ".."):
		why = `contains ".."`
	case strings.ContainsRune(name, '\\'):
		why = "contains a backslash"
	case strings.ContainsRune(name, 0):
		why = "contains NUL"
	default:
		for c := range strings.SplitSeq(name, "/") {
			if c == "" {
				why = "empty path component"
				break
			}
			if c[0] == '.' {
				why = "path component starts with '.'"
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidName, why)
}
