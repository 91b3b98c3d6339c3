package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/scenario"
)

// SchemaVersion names the format of result.json. Its JSON Schema is
// result.schema.json beside this file (Schema). A change that removes or
// retypes a field makes a new version; adding an optional field does not.
const SchemaVersion = "smtplab/result/v1"

// Result is everything one run produced; it is written as result.json,
// with its raw events beside it as events.jsonl.
type Result struct {
	Schema      string            `json:"schema"` // SchemaVersion
	RunID       string            `json:"run_id"`
	Scenario    scenario.Scenario `json:"scenario"` // as run, defaults filled in
	Environment Environment       `json:"environment"`
	Started     time.Time         `json:"started"`
	// Complete is true when the summary, outcome and records were built
	// from the run's evidence; false when the run failed before that
	// (then they are empty and say nothing).
	Complete bool     `json:"complete"`
	Summary  Summary  `json:"summary"`
	Outcome  Outcome  `json:"outcome"`
	Seed1999 Summary  `json:"seed_1999"`
	Overhead Overhead `json:"overhead"`
	// Expectations are the scenario's expect: block, checked against the
	// summary and outcome (Check); empty when the scenario has none.
	Expectations []Verdict `json:"expectations"`
	Records
	// Injections are every injected message's due and actual start after
	// the injection began (lab/pace), in workload order.
	Injections []pace.Start `json:"injections,omitempty"`
	// Memory is each role's container's resident memory as the run went
	// (RoleMemory); empty when not measured (docker compose).
	Memory []RoleMemory `json:"memory,omitempty"`
	// Error is why the run ended badly, when it did ("" otherwise).
	Error string `json:"error,omitempty"`
	Dir   string `json:"-"` // the run's folder
	// Path is the file Load read (a result.json, or any *.json it was
	// given), for errors and output to name; "" for a result not loaded.
	Path string `json:"-"`
	// Events are written beside as events.jsonl; nil when the run wrote
	// that file itself (lab.Run merges its roles' logs straight into it).
	Events []events.Event `json:"-"`
}

// Environment is where the run ran.
type Environment struct {
	LabVersion    string `json:"lab_version"`
	GoVersion     string `json:"go_version"`
	EngineVersion string `json:"engine_version"`
	Image         string `json:"image"`
	ImageID       string `json:"image_id"`
	ImageBuilt    bool   `json:"image_built"`
	CPUs          int    `json:"cpus"`
	MemoryBytes   int64  `json:"memory_bytes"` // the engine's total memory; 0 when unknown
	OS            string `json:"os"`
	Network       string `json:"network"`
	// Senders is how many sending hosts ran the sender (a swarm
	// service's replicas); 0 or 1 is one.
	Senders int `json:"senders,omitempty"`
}

// Overhead is the lab's own cost around the measured part.
type Overhead struct {
	StartToInjection time.Duration `json:"start_to_injection_ns"` // Run called to first injection
	DeliveryToExit   time.Duration `json:"delivery_to_exit_ns"`   // last delivery to Run returning
	ImageBuild       time.Duration `json:"image_build_ns"`
	// Collect is from the end of delivery to the evidence gathered: every
	// role's log merged into events.jsonl, the Maildir and logs copied out.
	Collect time.Duration `json:"collect_ns,omitempty"`
	// Report is the time to build the summary, records and verdicts from
	// that evidence and write report.html (result.json, written last with
	// this figure in it, is not counted).
	Report time.Duration `json:"report_ns,omitempty"`
}

// Files in a run's folder.
const (
	ResultFile = "result.json"
	EventsFile = "events.jsonl"
	HTMLFile   = "report.html"
)

// Write puts result.json and events.jsonl (unless the run wrote it
// itself: Events) in r.Dir. Lists the schema
// requires are written as [] when empty, never null: nil ones in r are
// made empty.
func (r *Result) Write() error {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	r.Schema = SchemaVersion
	r.Expectations = orEmpty(r.Expectations)
	r.Messages = orEmpty(r.Messages)
	r.Connections = orEmpty(r.Connections)
	r.Queries = orEmpty(r.Queries)
	r.Faults = orEmpty(r.Faults)
	for i := range r.Messages {
		r.Messages[i].Rcpts = orEmpty(r.Messages[i].Rcpts)
	}
	rf, err := os.Create(filepath.Join(r.Dir, ResultFile))
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	werr := r.WriteJSON(rf)
	if cerr := rf.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write result: %w", werr)
	}
	// A run that merged its logs into events.jsonl itself (the lab does,
	// to hold no run's events whole) leaves Events nil: that file stays.
	path := filepath.Join(r.Dir, EventsFile)
	if _, err := os.Stat(path); err == nil && r.Events == nil {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	defer f.Close()
	if err := events.WriteJSONL(f, r.Events); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	return f.Close()
}

// WriteJSON writes r as result.json holds it (indented, a newline at the
// end) as a stream: the records, which grow with the run (a message, a
// connection, a query each), are encoded one at a time, never the whole
// document at once. The bytes are those json.MarshalIndent(r, "", "  ")
// would give.
func (r *Result) WriteJSON(w io.Writer) error {
	head := *r
	head.Messages, head.Connections, head.Queries = nil, nil, nil
	b, err := json.MarshalIndent(&head, "", "  ")
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	// Each list left out is "null" in the head, at the top level (two
	// spaces in): the list is written there, element by element.
	for _, l := range []struct {
		key  string
		n    int
		elem func(i int) any
	}{
		{"messages", len(r.Messages), func(i int) any { return &r.Messages[i] }},
		{"connections", len(r.Connections), func(i int) any { return &r.Connections[i] }},
		{"queries", len(r.Queries), func(i int) any { return &r.Queries[i] }},
	} {
		marker := []byte("\n  \"" + l.key + "\": null")
		at := bytes.Index(b, marker)
		if at < 0 {
			return fmt.Errorf("result.json: no %q in the document", l.key)
		}
		bw.Write(b[:at+len(marker)-len("null")])
		b = b[at+len(marker):]
		if l.n == 0 {
			bw.WriteString("[]")
			continue
		}
		bw.WriteString("[")
		for i := range l.n {
			e, err := json.MarshalIndent(l.elem(i), "    ", "  ")
			if err != nil {
				return err
			}
			if i > 0 {
				bw.WriteString(",")
			}
			bw.WriteString("\n    ")
			bw.Write(e)
		}
		bw.WriteString("\n  ]")
	}
	bw.Write(b)
	bw.WriteString("\n")
	return bw.Flush()
}

// orEmpty is s, or an empty slice when s is nil: encoding/json writes
// nil as null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Load reads a result.json (or a run's folder holding one). Every error
// names the file and says what is wrong with it: missing, empty,
// truncated, not JSON, or JSON that is not an smtplab result (another
// schema, or another version of this one). Events are not read.
func Load(path string) (*Result, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ResultFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file (give a run's result.json or its folder under results/)", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Dir, r.Path = filepath.Dir(path), path
	return r, nil
}

// Parse reads a result document; see Load.
func Parse(b []byte) (*Result, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty file, not an smtplab result")
	}
	var probe struct {
		Schema *string `json:"schema"`
		RunID  *string `json:"run_id"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, jsonError(b, err)
	}
	switch {
	case probe.Schema == nil:
		return nil, fmt.Errorf("not an smtplab result: no \"schema\" field (want %q)", SchemaVersion)
	case *probe.Schema != SchemaVersion:
		return nil, fmt.Errorf("schema %q, this lab reads %q", *probe.Schema, SchemaVersion)
	case probe.RunID == nil || *probe.RunID == "":
		return nil, errors.New("not an smtplab result: no run_id")
	}
	var r Result
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, jsonError(b, err)
	}
	return &r, nil
}

// jsonError says where JSON went wrong, as line:column where it can.
func jsonError(b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	// json.Unmarshal reports an early end as a SyntaxError, a Decoder as
	// io.ErrUnexpectedEOF: both mean the text stops mid-document.
	case errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &se) && strings.HasPrefix(se.Error(), "unexpected end of JSON input"):
		return fmt.Errorf("truncated: the JSON ends early (%d bytes); was the run interrupted while writing?", len(b))
	case errors.As(err, &se):
		l, c := lineCol(b, se.Offset)
		return fmt.Errorf("not valid JSON at line %d, column %d: %v", l, c, se)
	case errors.As(err, &te) && te.Field == "":
		// The whole document has the wrong type: say so, not the Go type.
		return fmt.Errorf("not an smtplab result: the file holds a JSON %s, want an object", te.Value)
	case errors.As(err, &te):
		l, c := lineCol(b, te.Offset)
		return fmt.Errorf("line %d, column %d: field %q holds a JSON %s, want %s", l, c, te.Field, te.Value, te.Type)
	}
	// A field's own decoder refused its value (a time, a duration).
	return fmt.Errorf("not a valid smtplab result: %w", err)
}

// lineCol is where the byte before off is, counting from line 1, column
// 1: encoding/json's offsets count the bytes read, the offending one
// included.
func lineCol(b []byte, off int64) (line, col int) {
	i := min(max(off-1, 0), int64(len(b)))
	line = 1 + bytes.Count(b[:i], []byte("\n"))
	col = int(i) - bytes.LastIndexByte(b[:i], '\n')
	return line, col
}
