package plugins

import (
	"crypto/sha256"
	"fmt"
)

// NameUUID is a version-5-style UUID made from a SHA-256 of name: a
// stable instance ID for a resource whose identity is a string (a path,
// a pool and an image ID), safe in a URL path segment.
func NameUUID(name string) string {
	h := sha256.Sum256([]byte(name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// SavingInfoSchema is the JSON schema of what a plugin saves per backup
// (the fields the appliance shows for each resource of a checkpoint).
func SavingInfoSchema(title string) map[string]any {
	return map[string]any{
		"type": "object", "title": title,
		"properties": map[string]any{
			"backup_id":       map[string]any{"type": "string"},
			"size":            map[string]any{"type": "integer"},
			"allocated_bytes": map[string]any{"type": "integer"},
			"stored_bytes":    map[string]any{"type": "integer"},
		},
	}
}
