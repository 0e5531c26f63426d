package plugins

import (
	"errors"
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
		{"string as number", map[string]any{"name": 3.0}, false},
		{"not a boolean", map[string]any{"full": "yes"}, false},
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
