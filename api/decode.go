package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
)

const maxBody = 1 << 20

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

func checkUUID(what, s string) error {
	if !uuidRE.MatchString(s) {
		return fmt.Errorf("%s %q: %w", what, s, errBadID)
	}
	return nil
}

// readBody reads at most 1 MiB.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadBody, err)
	}
	if len(b) > maxBody {
		return nil, errTooLarge
	}
	return b, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadBody, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the JSON object", errBadBody)
	}
	return nil
}

// Request envelopes, as python3-karborclient sends them.

type planBody struct {
	Plan *struct {
		Name        *string        `json:"name"`
		Description *string        `json:"description"`
		ProviderID  string         `json:"provider_id"`
		Resources   []resourceBody `json:"resources"`
		Parameters  map[string]any `json:"parameters"`
		Status      *string        `json:"status"`
	} `json:"plan"`
}

type resourceBody struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Name      string         `json:"name"`
	ExtraInfo map[string]any `json:"extra_info"`
}

type checkpointBody struct {
	Checkpoint *struct {
		PlanID    string         `json:"plan_id"`
		ExtraInfo map[string]any `json:"extra-info"`
		ExtraInf2 map[string]any `json:"extra_info"`
	} `json:"checkpoint"`
}

type restoreBody struct {
	Restore *struct {
		ProviderID    string         `json:"provider_id"`
		CheckpointID  string         `json:"checkpoint_id"`
		RestoreTarget *string        `json:"restore_target"`
		RestoreAuth   map[string]any `json:"restore_auth"`
		Parameters    map[string]any `json:"parameters"`
	} `json:"restore"`
}

type verificationBody struct {
	Verification *struct {
		ProviderID   string         `json:"provider_id"`
		CheckpointID string         `json:"checkpoint_id"`
		Parameters   map[string]any `json:"parameters"`
	} `json:"verification"`
}

type triggerBody struct {
	TriggerInfo *struct {
		Name       *string        `json:"name"`
		Type       string         `json:"type"`
		Properties map[string]any `json:"properties"`
	} `json:"trigger_info"`
}

type opBody struct {
	Op *struct {
		Name                string            `json:"name"`
		Description         string            `json:"description"`
		OperationType       string            `json:"operation_type"`
		TriggerID           string            `json:"trigger_id"`
		OperationDefinition map[string]string `json:"operation_definition"`
	} `json:"scheduled_operation"`
}

type quotaBody struct {
	Quota *struct {
		Plans *int `json:"plans"`
	} `json:"quota"`
}

// decodeRequest decodes body b of the request kind into its envelope; it
// is what the fuzz test drives.
func decodeRequest(kind string, b []byte) (any, error) {
	var v any
	switch kind {
	case "plan":
		v = &planBody{}
	case "checkpoint":
		v = &checkpointBody{}
	case "restore":
		v = &restoreBody{}
	case "verification":
		v = &verificationBody{}
	case "trigger":
		v = &triggerBody{}
	case "scheduled_operation":
		v = &opBody{}
	case "quota":
		v = &quotaBody{}
	default:
		return nil, fmt.Errorf("unknown request kind %q", kind)
	}
	if err := decodeStrict(b, v); err != nil {
		return nil, err
	}
	if isNilEnvelope(v) {
		return nil, fmt.Errorf("%w: missing the %q object", errBadBody, kind)
	}
	return v, nil
}

func isNilEnvelope(v any) bool {
	switch e := v.(type) {
	case *planBody:
		return e.Plan == nil
	case *checkpointBody:
		return e.Checkpoint == nil
	case *restoreBody:
		return e.Restore == nil
	case *verificationBody:
		return e.Verification == nil
	case *triggerBody:
		return e.TriggerInfo == nil
	case *opBody:
		return e.Op == nil
	case *quotaBody:
		return e.Quota == nil
	}
	return true
}

// stringProps turns trigger properties into strings: the client sends
// window as a number. Nested values are refused.
func stringProps(m map[string]any) (map[string]string, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out[k] = x
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(x)
		default:
			return nil, fmt.Errorf("%w: trigger property %q must be a string or number", errBadBody, k)
		}
	}
	return out, nil
}
