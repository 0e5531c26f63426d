package appliance

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"cairn/plugins"
)

// Status values, as Karbor spells them.
const (
	PlanSuspended = "suspended"
	PlanStarted   = "started"

	CheckpointProtecting = "protecting"
	CheckpointAvailable  = "available"
	CheckpointError      = "error"
	CheckpointDeleting   = "deleting"

	RestoreInProgress = "in_progress"
	RestoreSuccess    = "success"
	RestoreFail       = "fail"

	ResourceProtecting = "protecting"
	ResourceAvailable  = "available"
	ResourceError      = "error"
	ResourceRestoring  = "restoring"
	ResourceSkipped    = "skipped"
)

// Plan is a Karbor protection plan.
type Plan struct {
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	Description string             `json:"description"`
	ProviderID  string             `json:"provider_id"`
	ProjectID   string             `json:"project_id"`
	Status      string             `json:"status"`
	Resources   []plugins.Resource `json:"resources"`
	Parameters  map[string]any     `json:"parameters"`
	CreatedAt   time.Time          `json:"created_at"`
}

// PlanRef is the plan as recorded inside a checkpoint (Karbor's
// protection_plan).
type PlanRef struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	ProviderID string             `json:"provider_id"`
	Resources  []plugins.Resource `json:"resources"`
	// Parameters are the plan's protection options when the checkpoint
	// was created (never changed afterwards).
	Parameters map[string]any `json:"parameters,omitempty"`
}

// ResourceBackup is one resource's part of a checkpoint.
type ResourceBackup struct {
	Resource plugins.Resource `json:"resource"`
	Status   string           `json:"status"`
	Reason   string           `json:"reason,omitempty"`
	BackupID string           `json:"backup_id,omitempty"`
	// DependsOn are the keys (plugins.Key) of the checkpoint's resources
	// this one depends on: the edges of checkpoint-show's resource_graph.
	DependsOn []string `json:"depends_on,omitempty"`
	Size      int64    `json:"size"`
	// Allocated, Read, New and Stored bytes come from the repository.
	AllocatedBytes int64 `json:"allocated_bytes"`
	ReadBytes      int64 `json:"read_bytes"`
	NewBytes       int64 `json:"new_bytes"`
	StoredBytes    int64 `json:"stored_bytes"`
}

// Checkpoint is a Karbor checkpoint.
type Checkpoint struct {
	ID            string           `json:"id"`
	ProjectID     string           `json:"project_id"`
	ProviderID    string           `json:"provider_id"`
	Status        string           `json:"status"`
	Progress      int              `json:"progress"`
	Plan          PlanRef          `json:"protection_plan"`
	Resources     []ResourceBackup `json:"resources"`
	ExtraInfo     map[string]any   `json:"extra_info"`
	CreatedAt     time.Time        `json:"created_at"`
	ErrorReason   string           `json:"error_reason,omitempty"`
	ScheduledOpID string           `json:"scheduled_operation_id,omitempty"`
	// Transfer is how far a running protection has read; zero (and not
	// shown) once the checkpoint is no longer protecting.
	Transfer Transfer          `json:"transfer,omitzero"`
	Tags     map[string]string `json:"-"`
}

// Transfer is the byte progress of a running job, for progress bars: the
// bytes read so far and the bytes the job will read, both over all of its
// resources (resources not yet started count once they start), the mean
// rate since the job started and the time left at that rate.
type Transfer struct {
	DoneBytes   int64 `json:"done_bytes"`
	TotalBytes  int64 `json:"total_bytes"`
	BytesPerSec int64 `json:"bytes_per_second"`
	// ETASeconds is -1 while the rate is not known yet.
	ETASeconds int64     `json:"eta_seconds"`
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// update sets the byte counts at now and derives the rate and ETA.
func (t *Transfer) update(done, total int64, now time.Time) {
	t.DoneBytes, t.TotalBytes, t.UpdatedAt = done, max(total, done), now
	t.ETASeconds = -1
	if secs := now.Sub(t.StartedAt).Seconds(); secs > 0 && done > 0 {
		t.BytesPerSec = int64(float64(done) / secs)
		if t.BytesPerSec > 0 {
			t.ETASeconds = (t.TotalBytes - done) / t.BytesPerSec
		}
	}
}

// Restore is a Karbor restore (also used for verifications).
type Restore struct {
	ID              string            `json:"id"`
	ProjectID       string            `json:"project_id"`
	ProviderID      string            `json:"provider_id"`
	CheckpointID    string            `json:"checkpoint_id"`
	RestoreTarget   string            `json:"restore_target"`
	Parameters      map[string]any    `json:"parameters"`
	Status          string            `json:"status"`
	Progress        int               `json:"progress"`
	ResourcesStatus map[string]string `json:"resources_status"`
	ResourcesReason map[string]string `json:"resources_reason"`
	// Restored maps "type#id" to where the resource was written.
	Restored  map[string]string `json:"restored,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	// Transfer is how far a running restore has written (as a
	// checkpoint's); zero once it ended, and for verifications.
	Transfer Transfer `json:"transfer,omitzero"`
}

// Trigger is a Karbor trigger.
type Trigger struct {
	ID         string            `json:"id"`
	ProjectID  string            `json:"project_id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Properties map[string]string `json:"properties"`
	CreatedAt  time.Time         `json:"created_at"`
}

// ScheduledOperation is a Karbor scheduled operation.
type ScheduledOperation struct {
	ID                  string            `json:"id"`
	ProjectID           string            `json:"project_id"`
	Name                string            `json:"name"`
	Description         string            `json:"description"`
	OperationType       string            `json:"operation_type"`
	TriggerID           string            `json:"trigger_id"`
	OperationDefinition map[string]string `json:"operation_definition"`
	Enabled             bool              `json:"enabled"`
	// TrustID is the Keystone trust from the operation's creator to the
	// cloud user that its runs act through ("" in noauth or without a
	// cloud section: they act as the cloud user itself).
	TrustID   string    `json:"trust_id,omitempty"`
	LastRun   time.Time `json:"last_run,omitzero"`
	NextRun   time.Time `json:"next_run,omitzero"`
	CreatedAt time.Time `json:"created_at"`
}

// OperationLog is a Karbor operation log entry.
type OperationLog struct {
	ID                   string         `json:"id"`
	ProjectID            string         `json:"project_id"`
	OperationType        string         `json:"operation_type"`
	CheckpointID         string         `json:"checkpoint_id"`
	PlanID               string         `json:"plan_id"`
	ProviderID           string         `json:"provider_id"`
	RestoreID            string         `json:"restore_id"`
	ScheduledOperationID string         `json:"scheduled_operation_id"`
	Status               string         `json:"status"`
	StartedAt            time.Time      `json:"started_at"`
	EndedAt              time.Time      `json:"ended_at"`
	ErrorInfo            string         `json:"error_info"`
	ExtraInfo            map[string]any `json:"extra_info"`
}

// MarshalJSON writes every field, ended_at as null while running: the
// karbor client's list tables take their columns from the first entry and
// fail on a later one with more fields.
func (l OperationLog) MarshalJSON() ([]byte, error) {
	type plain OperationLog
	var ended *time.Time
	if !l.EndedAt.IsZero() {
		ended = &l.EndedAt
	}
	return json.Marshal(struct {
		plain
		EndedAt *time.Time `json:"ended_at"`
	}{plain(l), ended})
}

// Quota is a project's quota set.
type Quota struct {
	ID    string `json:"id"`
	Plans int    `json:"plans"`
}

// job is the crash-recovery record of a running job.
type job struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"` // protect, restore, verify
	ObjectID  string    `json:"object_id"`
	ProjectID string    `json:"project_id"`
	Temp      []string  `json:"temp,omitempty"` // files to remove if interrupted
	StartedAt time.Time `json:"started_at"`
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// resKey is Karbor's "type#id" key of a resource in status maps.
func resKey(r plugins.Resource) string { return r.Type + "#" + r.ID }
