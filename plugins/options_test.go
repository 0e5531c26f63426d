package plugins

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestCheckOptions(t *testing.T) {
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"sample": map[string]any{"type": "number", "minimum": 0.0, "maximum": 1.0},
			"every":  map[string]any{"type": "integer", "minimum": 0.0},
			"name":   map[string]any{"type": "string"},
			"full":   map[string]any{"type": "boolean"},
			"path":   map[string]any{"type": "string", "enum": []string{"direct", "attach"}},
			"mode":   map[string]any{"type": "string", "enum": []any{"a", "b"}}, // as decoded from JSON
		},
		"additionalProperties": false,
	}
	cases := []struct {
		name string
		opts map[string]any
		ok   bool
	}{
		{"none", nil, true},
		{"all valid", map[string]any{"sample": 0.05, "every": 7.0, "name": "x", "full": true}, true},
		{"unknown", map[string]any{"bogus": 1.0}, false},
		{"number as a string (karbor --parameters)", map[string]any{"sample": "0.5", "every": "3", "full": "true"}, true},
		{"not a number", map[string]any{"sample": "half"}, false},
		{"NaN", map[string]any{"sample": "NaN"}, false},
		{"above maximum", map[string]any{"sample": 1.5}, false},
		{"below minimum", map[string]any{"every": -1.0}, false},
		{"fractional integer", map[string]any{"every": 2.5}, false},
		{"huge integer", map[string]any{"every": 1e300}, false},
		{"string as number", map[string]any{"name": 3.0}, false},
		{"not a boolean", map[string]any{"full": "yes"}, false},
		{"in the enum", map[string]any{"path": "attach", "mode": "b"}, true},
		{"not in the enum", map[string]any{"path": "nbd"}, false},
		{"not in the decoded enum", map[string]any{"mode": "c"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := NormalizeOptions(schema, c.opts)
			if c.ok != (err == nil) {
				t.Fatalf("CheckOptions = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidParameter) {
				t.Fatalf("error %v does not wrap ErrInvalidParameter", err)
			}
			for k, v := range got {
				switch k {
				case "sample", "every":
					if _, ok := v.(float64); !ok {
						t.Errorf("%s = %#v, want a float64", k, v)
					}
				case "full":
					if _, ok := v.(bool); !ok {
						t.Errorf("%s = %#v, want a bool", k, v)
					}
				}
			}
		})
	}
	open := map[string]any{"type": "object", "properties": map[string]any{}}
	if _, err := NormalizeOptions(open, map[string]any{"anything": 1.0}); err != nil {
		t.Fatalf("a schema without additionalProperties:false refused an extra option: %v", err)
	}
}

// FuzzNormalizeOptions feeds arbitrary JSON objects (a plan's parameters
// come from API bodies) through the RBD-like schema: no panic, and what is
// accepted has the schema's types.
func FuzzNormalizeOptions(f *testing.F) {
	schema := map[string]any{"type": "object", "additionalProperties": false,
		"properties": map[string]any{
			"sample": map[string]any{"type": "number", "minimum": 0.0, "maximum": 1.0},
			"every":  map[string]any{"type": "integer", "minimum": 0.0},
			"full":   map[string]any{"type": "boolean"},
			"name":   map[string]any{"type": "string"},
		}}
	for _, s := range []string{`{}`, `{"sample": 0.5}`, `{"every": "3"}`, `{"full": "true", "name": "x"}`, `{"sample": [1]}`, `{"x": null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var opts map[string]any
		if json.Unmarshal(b, &opts) != nil {
			return
		}
		got, err := NormalizeOptions(schema, opts)
		if err != nil {
			if !errors.Is(err, ErrInvalidParameter) {
				t.Fatalf("error %v does not wrap ErrInvalidParameter", err)
			}
			return
		}
		for k, v := range got {
			var ok bool
			switch k {
			case "sample":
				f, isF := v.(float64)
				ok = isF && f >= 0 && f <= 1
			case "every":
				f, isF := v.(float64)
				ok = isF && f >= 0 && f == math.Trunc(f) && f <= 1<<53
			case "full":
				_, ok = v.(bool)
			case "name":
				_, ok = v.(string)
			}
			if !ok {
				t.Fatalf("accepted %s = %#v from %s", k, v, b)
			}
		}
	})
}
