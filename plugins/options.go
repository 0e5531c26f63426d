package plugins

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
)

// NormalizeOptions checks opts against a plugin's options schema
// (Schemas.Options) and returns them with typed values. The schema is the
// subset of JSON Schema the plugins publish: an object whose properties
// are of type "number", "integer", "string" or "boolean", with optional
// "minimum" and "maximum", "enum" for strings, and
// "additionalProperties": false. Values are
// as encoding/json decodes them (numbers are float64); strings are also
// accepted for numbers and booleans, since the karbor client's
// --parameters key=val sends every value as a string. Errors wrap
// ErrInvalidParameter and name the option.
func NormalizeOptions(schema map[string]any, opts map[string]any) (map[string]any, error) {
	props, _ := schema["properties"].(map[string]any)
	out := make(map[string]any, len(opts))
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad option is the same on every call
	for _, k := range keys {
		p, ok := props[k].(map[string]any)
		if !ok {
			// JSON Schema allows extra properties unless told otherwise.
			if extra, set := schema["additionalProperties"].(bool); set && !extra {
				return nil, fmt.Errorf("unknown option %q (known: %v): %w", k, sortedKeys(props), ErrInvalidParameter)
			}
			out[k] = opts[k]
			continue
		}
		v, err := checkValue(p, opts[k])
		if err != nil {
			return nil, fmt.Errorf("option %q: %w: %w", k, err, ErrInvalidParameter)
		}
		out[k] = v
	}
	return out, nil
}

// checkValue returns v as the type p names, or why it is not one.
func checkValue(p map[string]any, v any) (any, error) {
	want, _ := p["type"].(string)
	switch want {
	case "number", "integer":
		f, ok := v.(float64)
		if s, isString := v.(string); isString {
			var err error
			f, err = strconv.ParseFloat(s, 64)
			ok = err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
		}
		if !ok {
			return nil, fmt.Errorf("want a %s, got %v", want, v)
		}
		if want == "integer" && (f != math.Trunc(f) || math.Abs(f) > 1<<53) {
			// Beyond 2^53 a float64 no longer holds every integer, and
			// plugins convert to int.
			return nil, fmt.Errorf("want an integer of at most 2^53, got %v", f)
		}
		if lo, ok := p["minimum"].(float64); ok && f < lo {
			return nil, fmt.Errorf("%v is below the minimum %v", f, lo)
		}
		if hi, ok := p["maximum"].(float64); ok && f > hi {
			return nil, fmt.Errorf("%v is above the maximum %v", f, hi)
		}
		return f, nil
	case "string":
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		if enum := stringEnum(p["enum"]); enum != nil && !slices.Contains(enum, str) {
			return nil, fmt.Errorf("%q is not one of %q", str, enum)
		}
	case "boolean":
		b, ok := v.(bool)
		if s, isString := v.(string); isString {
			var err error
			b, err = strconv.ParseBool(s)
			ok = err == nil
		}
		if !ok {
			return nil, fmt.Errorf("want a boolean, got %v", v)
		}
		return b, nil
	}
	return v, nil
}

// stringEnum returns a schema's "enum" as strings (nil for none); it may
// have been through JSON ([]any).
func stringEnum(v any) []string {
	switch e := v.(type) {
	case []string:
		return e
	case []any:
		out := make([]string, 0, len(e))
		for _, x := range e {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
