package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
)

// Real runs' result.json files validate against the schema, also after a
// round trip through today's types (so a field renamed or retyped in Go
// without a schema change fails here). The container test in package lab
// validates the file a fresh run writes.
func TestSchemaAcceptsRealResults(t *testing.T) {
	files, _ := filepath.Glob("testdata/*-result.json")
	if len(files) == 0 {
		t.Fatal("no testdata/*-result.json")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		r, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(again); err != nil {
			t.Errorf("%s re-encoded: %v", f, err)
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	b, err := os.ReadFile("testdata/fast-result.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, old, new, want string }{
		{"other version", `"schema": "smtplab/result/v1"`, `"schema": "smtplab/result/v0"`, "/schema"},
		{"negative count", `"injected": 200,`, `"injected": -1,`, "/summary/injected"},
		{"timeout as a number", `"timeout": "`, `"timeout": 5, "x": "`, "/scenario/timeout"},
		{"duration as text", `"total_time_ns": `, `"total_time_ns": "3s", "x": `, "/summary/total_time_ns"},
		{"unknown status", `"status": "delivered"`, `"status": "maybe"`, "/messages/0/status"},
		{"bad time", `"started": "`, `"started": "yesterday", "x": "`, "/started"},
	} {
		doc := strings.Replace(string(b), c.old, c.new, 1)
		if doc == string(b) {
			t.Fatalf("%s: %q not in the testdata", c.name, c.old)
		}
		err := Validate([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error at %s", c.name, err, c.want)
		}
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	delete(m, "messages")
	doc, _ := json.Marshal(m)
	if err := Validate(doc); err == nil || !strings.Contains(err.Error(), "messages") {
		t.Errorf("without messages: Validate = %v, want it missing", err)
	}
}

// The schema keeps additionalProperties open (readers ignore fields they
// do not know), so validating a file cannot tell that a Go field was
// renamed or added without the schema following. TestSchemaMatchesGoTypes
// can: it walks report.Result's Go types beside the schema and names
// every field the two disagree on.
func TestSchemaMatchesGoTypes(t *testing.T) {
	for _, p := range schemaDrift(t, Schema, reflect.TypeFor[Result]()) {
		t.Error(p)
	}
}

// TestSchemaDriftIsCaught shows the walk can fail: each change to the
// schema, or a Go type that drifted from it, is reported at its field.
func TestSchemaDriftIsCaught(t *testing.T) {
	edit := func(old, new string) []byte {
		t.Helper()
		if !bytes.Contains(Schema, []byte(old)) {
			t.Fatalf("%q not in the schema", old)
		}
		return bytes.Replace(Schema, []byte(old), []byte(new), 1)
	}
	for _, c := range []struct {
		name   string
		schema []byte
		want   []string
	}{
		{"renamed property", edit(`"retries": {`, `"sender_retries": {`),
			[]string{"summary.retries: Go field is not in the schema", "summary.sender_retries: schema property has no Go field"}},
		{"always written, not required", edit(`"dsns", "dsns_failed"]`, `"dsns"]`),
			[]string{"summary.dsns_failed: Go always writes it"}},
		{"optional, required", edit(`"required": ["role", "conn", "host", "opened", "messages"]`, `"required": ["role", "conn", "host", "opened", "messages", "closed"]`),
			[]string{"connections[].closed: required, but Go omits it"}},
		{"integer as string", edit(`"copies": {"type": "integer", "minimum": 0}`, `"copies": {"type": "string"}`),
			[]string{"messages[].copies: Go int is JSON integer, schema says string"}},
		{"duration as string", edit(`"duration": {"type": "integer", "minimum": 0}`, `"duration": {"type": "string"}`),
			[]string{"overhead.image_build_ns: Go time.Duration is JSON integer, schema says string"}},
		{"time without format", edit(`"time": {"type": "string", "format": "date-time"}`, `"time": {"type": "string"}`),
			[]string{"started: Go time.Time is a date-time string"}},
		{"unmeasured figure not nullable", edit(`"held_by_faults": {"type": ["integer", "null"]`, `"held_by_faults": {"type": "integer"`),
			[]string{"summary.held_by_faults: Go may write it as null (not measured), schema says integer"}},
		{"bool as string", edit(`"ok": {"type": "boolean"}`, `"ok": {"type": "string"}`),
			[]string{"expectations[].ok: Go bool is JSON boolean, schema says string"}},
		{"embedded through allOf", edit(`"p99_ns": {"$ref": "#/$defs/duration"}, "max_ns"`, `"p99": {"$ref": "#/$defs/duration"}, "max_ns"`),
			[]string{"summary.latency.p99_ns: Go field is not in the schema", "summary.checks{}.p99_ns: Go field is not in the schema"}},
		{"scenario key gone from Go", edit(`"required": ["name", "timeout", "seed",`, `"required": ["name", "timeout", "rng_seed", "seed",`),
			[]string{"scenario.rng_seed: required, but Go has no such field"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := strings.Join(schemaDrift(t, c.schema, reflect.TypeFor[Result]()), "\n")
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("drift reported:\n%s\nwant it to say %q", got, w)
				}
			}
		})
	}

	// The other way round: a Go type that renamed a field.
	type drifted struct {
		Schema       string `json:"schema"`
		RunID        string `json:"run_id"`
		SenderRetry  int    `json:"sender_retries"`
		Expectations []struct {
			Name string `json:"name"`
			OK   int    `json:"ok,omitempty"`
		} `json:"expectations"`
	}
	got := strings.Join(schemaDrift(t, Schema, reflect.TypeFor[drifted]()), "\n")
	for _, w := range []string{
		"sender_retries: Go field is not in the schema",
		"complete: schema property has no Go field",
		"expectations[].ok: required, but Go omits it",
		"expectations[].ok: Go int is JSON integer, schema says boolean",
		"expectations[].want: schema property has no Go field",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("drift reported:\n%s\nwant it to say %q", got, w)
		}
	}
}

// schemaDrift walks the Go type t beside the JSON Schema doc and returns
// where they disagree, one line per field, named by its JSON path
// ("summary.retries", "messages[].rcpts", "summary.checks{}.p50_ns").
//
// The scenario subtree is lab/scenario's type, described loosely by the
// schema: there only what the schema states is checked (its properties
// and required keys exist in Go, with the types it gives), not that it
// lists every Go field.
func schemaDrift(t *testing.T, doc []byte, typ reflect.Type) []string {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		t.Fatalf("schema: %v", err)
	}
	w := &driftWalk{root: root}
	w.value("", typ, root, false)
	return w.problems
}

type driftWalk struct {
	root     map[string]any
	problems []string
}

func (w *driftWalk) fail(path, format string, args ...any) {
	w.problems = append(w.problems, path+": "+fmt.Sprintf(format, args...))
}

// resolve follows $ref (into the schema's $defs) and merges allOf, so the
// result holds every type, format, property and required key that
// applies to a value.
func (w *driftWalk) resolve(path string, s map[string]any) map[string]any {
	out := map[string]any{}
	merge := func(from map[string]any) {
		for k, v := range from {
			switch k {
			case "$ref", "allOf":
			case "properties":
				props, _ := out[k].(map[string]any)
				if props == nil {
					props = map[string]any{}
				}
				for name, p := range v.(map[string]any) {
					props[name] = p
				}
				out[k] = props
			case "required":
				req, _ := out[k].([]any)
				out[k] = append(req, v.([]any)...)
			default:
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
	}
	merge(s)
	if ref, ok := s["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		defs, _ := w.root["$defs"].(map[string]any)
		def, _ := defs[name].(map[string]any)
		if !ok || def == nil {
			w.fail(path, "$ref %q does not name one of the schema's $defs", ref)
		} else {
			merge(w.resolve(path, def))
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, a := range all {
			merge(w.resolve(path, a.(map[string]any)))
		}
	}
	return out
}

// jsonTypes is what a schema allows a value to be: its type keyword (one
// name or a list), else the JSON types of its const or enum.
func jsonTypes(s map[string]any) []string {
	var names []string
	switch ty := s["type"].(type) {
	case string:
		return []string{ty}
	case []any:
		for _, n := range ty {
			names = append(names, n.(string))
		}
		return names
	}
	of := func(v any) string {
		switch v.(type) {
		case string:
			return "string"
		case bool:
			return "boolean"
		case float64:
			return "number"
		}
		return "other"
	}
	if c, ok := s["const"]; ok {
		return []string{of(c)}
	}
	if e, ok := s["enum"].([]any); ok {
		for _, v := range e {
			names = append(names, of(v))
		}
	}
	return names
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	marshaler    = reflect.TypeFor[json.Marshaler]()
	// ownJSON are the types with their own MarshalJSON, and the JSON type
	// each writes.
	ownJSON = map[reflect.Type]string{
		reflect.TypeFor[duration.Duration](): "string",
	}
	// nulledFields are the types whose MarshalJSON writes their fields as
	// encoding/json would, but some of them as null: walked as structs,
	// and each of those keys must allow null. Summary writes the figures
	// a run did not measure as null (Summary.MarshalJSON).
	nulledFields = map[reflect.Type][]string{
		reflect.TypeFor[Summary](): slices.Sorted(maps.Keys(whyUnmeasured)),
	}
)

// value checks that s describes what encoding/json writes for a Go t.
// loose is for the scenario subtree: see schemaDrift.
func (w *driftWalk) value(path string, t reflect.Type, s map[string]any, loose bool) {
	s = w.resolve(path, s)
	want := func(goName, jsonType string) {
		types := jsonTypes(s)
		if !slices.Contains(types, jsonType) && !(jsonType == "integer" && slices.Contains(types, "number")) {
			w.fail(path, "Go %s is JSON %s, schema says %s", goName, jsonType, strings.Join(types, " or "))
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		if !slices.Equal(jsonTypes(s), []string{"string"}) || s["format"] != "date-time" {
			w.fail(path, "Go time.Time is a date-time string, schema says type %v, format %v", jsonTypes(s), s["format"])
		}
		return
	case t == durationType:
		want("time.Duration", "integer")
		return
	case nulledFields[t] != nil:
		want("struct", "object")
		w.object(path, t, s, loose)
		props, _ := s["properties"].(map[string]any)
		for _, key := range nulledFields[t] {
			p, ok := props[key].(map[string]any)
			if at := path + "." + key; !ok {
				w.fail(at, "Go may write it as null, but the schema has no such property")
			} else if types := jsonTypes(w.resolve(at, p)); !slices.Contains(types, "null") {
				w.fail(at, "Go may write it as null (not measured), schema says %s", strings.Join(types, " or "))
			}
		}
		return
	case t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler):
		if jt, ok := ownJSON[t]; ok {
			want(t.String(), jt)
		} else {
			w.fail(path, "Go %s writes its own JSON: say which JSON type in ownJSON", t)
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		want(t.Kind().String(), "string")
	case reflect.Bool:
		want(t.Kind().String(), "boolean")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want(t.Kind().String(), "integer")
	case reflect.Float32, reflect.Float64:
		want(t.Kind().String(), "number")
	case reflect.Slice, reflect.Array:
		want("slice", "array")
		if items, ok := s["items"].(map[string]any); ok {
			w.value(path+"[]", t.Elem(), items, loose)
		} else if !loose {
			w.fail(path, "schema gives no items for a Go %s", t)
		}
	case reflect.Map:
		want("map", "object")
		if elem, ok := s["additionalProperties"].(map[string]any); ok {
			w.value(path+"{}", t.Elem(), elem, loose)
		} else if !loose {
			w.fail(path, "schema gives no additionalProperties for a Go %s", t)
		}
	case reflect.Struct:
		want("struct", "object")
		w.object(path, t, s, loose)
	default:
		w.fail(path, "no rule for a Go %s", t)
	}
}

// object checks a struct's fields against the schema's properties and
// required keys, both ways.
func (w *driftWalk) object(path string, t reflect.Type, s map[string]any, loose bool) {
	at := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	req, _ := s["required"].([]any)
	for _, r := range req {
		required[r.(string)] = true
	}
	fields := map[string]bool{}
	for _, f := range jsonFields(t) {
		fields[f.name] = true
		p, ok := props[f.name].(map[string]any)
		switch {
		case !ok && !loose:
			w.fail(at(f.name), "Go field is not in the schema's properties")
		case !f.omit && !required[f.name] && !loose:
			w.fail(at(f.name), "Go always writes it (no omitempty or omitzero), but the schema does not require it")
		case f.omit && required[f.name]:
			w.fail(at(f.name), "required, but Go omits it when empty")
		}
		if ok {
			// The scenario is lab/scenario's type: from here on only
			// what the schema states is checked.
			w.value(at(f.name), f.typ, p, loose || (path == "" && f.name == "scenario"))
		}
	}
	for name := range props {
		if !fields[name] {
			w.fail(at(name), "schema property has no Go field")
		}
	}
	for name := range required {
		if _, ok := props[name]; !ok && !fields[name] {
			w.fail(at(name), "required, but Go has no such field")
		}
	}
}

type jsonField struct {
	name string
	typ  reflect.Type
	omit bool // omitempty or omitzero
}

// jsonFields lists the fields encoding/json writes for struct t, those of
// untagged embedded structs (Records, Latency) in their place.
func jsonFields(t reflect.Type) []jsonField {
	var fields []jsonField
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			fields = append(fields, jsonFields(ft)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := false
		for o := range strings.SplitSeq(opts, ",") {
			omit = omit || o == "omitempty" || o == "omitzero"
		}
		fields = append(fields, jsonField{name, f.Type, omit})
	}
	return fields
}
