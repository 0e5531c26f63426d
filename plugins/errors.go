package plugins

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownType is returned for a protectable type no plugin serves.
	ErrUnknownType = errors.New("unknown protectable type")
	// ErrInstanceNotFound is returned when a resource ID names no instance.
	ErrInstanceNotFound = errors.New("protectable instance not found")
	// ErrInvalidParameter marks a bad option, restore or verify parameter:
	// the caller's mistake, permanent.
	ErrInvalidParameter = errors.New("invalid parameter")
)

// ProjectPlaceholder, in a configured directory or pool name, stands for
// the project's ID, so that each project gets its own.
const ProjectPlaceholder = "{project_id}"

// ForProject replaces ProjectPlaceholder in tmpl with project. The ID
// becomes a path component or part of a pool name, so only letters,
// digits, '-' and '_' are accepted.
func ForProject(tmpl, project string) (string, error) {
	if !strings.Contains(tmpl, ProjectPlaceholder) {
		return tmpl, nil
	}
	if project == "" || len(project) > 64 {
		return "", fmt.Errorf("project ID %q: %w", project, ErrInvalidParameter)
	}
	for _, c := range project {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", fmt.Errorf("project ID %q has a character other than letters, digits, '-' and '_': %w", project, ErrInvalidParameter)
		}
	}
	return strings.ReplaceAll(tmpl, ProjectPlaceholder, project), nil
}
