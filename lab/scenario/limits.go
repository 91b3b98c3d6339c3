package scenario

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// What a scenario file may be: every bound is checked before any work
// that grows with the input (decoding, the workload's messages), so a
// hostile or mistaken file is refused at once, with its file:line.
const (
	// MaxFileBytes is the largest scenario file: the shipped ones are
	// under 5 KB; image files given inline are configuration, not data.
	MaxFileBytes = 1 << 20
	// maxDepth is the deepest nesting of flow collections ([ and {) and
	// of indentation levels: the shipped scenarios nest 5 deep.
	maxDepth = 64
	// maxIndent is the widest indentation, in columns: at least one
	// column a level, so it bounds block nesting too.
	maxIndent = 512
	// maxNodes is the most YAML nodes the file may stand for once every
	// alias is expanded (an alias repeats its anchor's whole value: ten
	// aliases of ten aliases of ... grow without bound from a few lines).
	maxNodes = 100_000
)

// preflight refuses, before decoding, a file too big, too deep or whose
// aliases expand too far. Each error is "LINE: what is wrong". It returns
// the file's syntax tree, parsed once for every later check (nil when the
// parser failed: the decoder then says what is wrong, with its position).
func preflight(data []byte) (*ast.File, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("1: the file is %d bytes; a scenario is at most %d", len(data), MaxFileBytes)
	}
	fl, flow, il, indent := nesting(data)
	if flow > maxDepth {
		return nil, fmt.Errorf("%d: nested %d deep; a scenario nests at most %d", fl, flow, maxDepth)
	}
	if indent > maxIndent {
		return nil, fmt.Errorf("%d: indented %d columns; a scenario is indented at most %d", il, indent, maxIndent)
	}
	f, err := parseBytes(data)
	if err != nil || f == nil {
		return nil, nil
	}
	if n, line := expanded(f); n > maxNodes {
		return nil, fmt.Errorf("%d: its aliases expand the file to more than %d values; a scenario holds at most %d", line, maxNodes, maxNodes)
	}
	return f, nil
}

// parseBytes parses YAML; a panic of the parser is an error (see decode).
func parseBytes(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("malformed YAML (the parser failed: %v)", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

// nesting is the deepest flow-collection nesting ([ and {) of data and
// its widest indentation, each with the line where it is reached. Quoted
// text and comments are skipped.
func nesting(data []byte) (flowLine, flow, indentLine, indent int) {
	ln, depth, col, quote, comment, atStart := 1, 0, 0, byte(0), false, true
	for _, b := range data {
		if b == '\n' {
			ln, comment, atStart, col = ln+1, false, true, 0
			continue
		}
		if comment {
			continue
		}
		if atStart && b == ' ' {
			if col++; col > indent {
				indentLine, indent = ln, col
			}
			continue
		}
		atStart = false
		switch {
		case quote != 0:
			if b == quote {
				quote = 0
			}
		case b == '"' || b == '\'':
			quote = b
		case b == '#':
			comment = true
		case b == '[' || b == '{':
			if depth++; depth > flow {
				flowLine, flow = ln, depth
			}
		case b == ']' || b == '}':
			depth = max(depth-1, 0)
		}
	}
	return flowLine, flow, indentLine, indent
}

// expanded is how many nodes f stands for with every alias replaced by
// its anchor's value, stopping early once past maxNodes, and the line of
// the alias that took it there.
func expanded(f *ast.File) (n, line int) {
	anchors := map[string]ast.Node{}
	for _, d := range f.Docs {
		ast.Walk(visitor(func(node ast.Node) {
			if a, ok := node.(*ast.AnchorNode); ok && a.Name != nil {
				anchors[a.Name.String()] = a.Value
			}
		}), d)
	}
	memo := map[string]int{}
	var size func(node ast.Node, depth int) int
	size = func(node ast.Node, depth int) int {
		total := 0
		ast.Walk(visitor(func(x ast.Node) {
			if total > maxNodes {
				return
			}
			total++
			al, ok := x.(*ast.AliasNode)
			if !ok || al.Value == nil {
				return
			}
			name := al.Value.String()
			v, seen := memo[name]
			if !seen {
				memo[name] = maxNodes + 1 // an alias inside its own anchor
				if a := anchors[name]; a != nil && depth < maxDepth {
					v = size(a, depth+1)
				}
				memo[name] = v
			}
			total += v
			if total > maxNodes && line == 0 && al.GetToken() != nil {
				line = al.GetToken().Position.Line
			}
		}), node)
		return total
	}
	for _, d := range f.Docs {
		if n += size(d, 0); n > maxNodes {
			return n, max(line, 1)
		}
	}
	return n, line
}

// visitor is an ast.Visitor calling fn on every node it enters.
type visitor func(ast.Node)

func (v visitor) Visit(node ast.Node) ast.Visitor {
	if node != nil {
		v(node)
	}
	return v
}

// multiLine are the settings whose text may hold line breaks and tabs:
// a message body, a file placed in an image, the description.
var multiLine = map[string]bool{
	"description": true, "workload.body": true,
}

// valueProblems walks every setting of s: a number must be finite, a text
// must hold no control character (a NUL or a line break in an address or
// a name reaches an SMTP command or a DNS question; only multiLine
// settings and image files' contents may break lines).
func (s Scenario) valueProblems(c *checks) {
	walkValues(reflect.ValueOf(s), "", func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Float32, reflect.Float64:
			if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
				c.add(path, "must be a finite number, got %v", f)
			}
		case reflect.String:
			text := v.String()
			lines := multiLine[path] || strings.HasSuffix(path, ".content")
			for _, r := range text {
				if r == 0 || (unicode.IsControl(r) && !(lines && (r == '\n' || r == '\r' || r == '\t'))) {
					c.add(path, "holds a control character (%U): not allowed here", r)
					break
				}
			}
		}
	})
}

// walkValues calls fn with every leaf value under v and its YAML path
// ("sender.max_per_host", "dns.blacklists[0].zone"; inline structs add
// no key; map values are under "key.NAME").
func walkValues(v reflect.Value, path string, fn func(string, reflect.Value)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkValues(v.Elem(), path, fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			tag := sf.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			p := path
			if !strings.Contains(opts, "inline") {
				if name == "" {
					name = strings.ToLower(sf.Name)
				}
				p = join(path, name)
			}
			walkValues(v.Field(i), p, fn)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkValues(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() == reflect.String {
				fn(path, k) // a key is text too
			}
			walkValues(iter.Value(), path, fn)
		}
	default:
		fn(path, v)
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// limitProblems are the rules across settings a user can get wrong: a
// limit that can never be reached because another is smaller. (A timeout
// shorter than the pace's schedule is allowed: it cuts the run short, and
// the result says which messages were never injected.)
func (s Scenario) limitProblems(c *checks) {
	sd, r := s.Sender, s.Receiver
	if sd.MaxConnections > 0 && sd.MaxPerHost > sd.MaxConnections {
		c.add("sender.max_per_host", "%d sessions to one host can never open with sender.max_connections %d in all", sd.MaxPerHost, sd.MaxConnections)
	}
	if r.MaxSessions > 0 && r.MaxPerIP > r.MaxSessions {
		c.add("receiver.max_per_ip", "%d sessions from one address can never be taken with receiver.max_sessions %d in all", r.MaxPerIP, r.MaxSessions)
	}
	if r.MaxSessions > 0 && r.MaxPerC > r.MaxSessions {
		c.add("receiver.max_per_c", "%d sessions from one C block can never be taken with receiver.max_sessions %d in all", r.MaxPerC, r.MaxSessions)
	}
}

// fractionProblems finds the numbers with a fraction written where a
// setting is a whole number ("delivered: 2.5"): the decoder would cut
// them to 2 without a word. Each is "LINE: path: what is wrong".
func fractionProblems(f *ast.File) []string {
	var out []string
	t := reflect.TypeOf(Scenario{})
	for _, d := range f.Docs {
		var walk func(n ast.Node, path []string)
		walk = func(n ast.Node, path []string) {
			switch n := n.(type) {
			case *ast.MappingNode:
				for _, v := range n.Values {
					walk(v, path)
				}
			case *ast.MappingValueNode:
				walk(n.Value, append(path[:len(path):len(path)], n.Key.String()))
			case *ast.SequenceNode:
				for _, v := range n.Values {
					walk(v, append(path[:len(path):len(path)], "[]"))
				}
			case *ast.FloatNode:
				if k, ok := kindAt(t, path); ok && k >= reflect.Int && k <= reflect.Uint64 && n.Value != math.Trunc(n.Value) {
					out = append(out, fmt.Sprintf("%d: %s: must be a whole number, got %v", n.GetToken().Position.Line, strings.Join(path, "."), n.Value))
				}
			}
		}
		if d.Body != nil {
			walk(d.Body, nil)
		}
	}
	return out
}

// kindAt is the kind of the setting at path (YAML keys, "[]" for a list
// item) in type t, through pointers and inline structs; false when there
// is none.
func kindAt(t reflect.Type, path []string) (reflect.Kind, bool) {
	for _, key := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case key == "[]" && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			t = t.Elem()
		case t.Kind() == reflect.Map:
			t = t.Elem()
		case t.Kind() == reflect.Struct:
			ft, ok := fieldByYAML(t, key)
			if !ok {
				return 0, false
			}
			t = ft
		default:
			return 0, false
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind(), true
}

// fieldByYAML is the type of t's field named key in YAML, inline structs
// searched too.
func fieldByYAML(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			if ft, ok := fieldByYAML(sf.Type, key); ok {
				return ft, true
			}
			continue
		}
		if name == key {
			return sf.Type, true
		}
	}
	return nil, false
}
