package events

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"io"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is the JSON Schema of one line of events.jsonl
// (events.schema.json): every field, and every kind with what it holds.
//
//go:embed events.schema.json
var Schema []byte

// Kinds are every kind of event, in the order of their declaration.
func Kinds() []Kind {
	return []Kind{Queued, ConnOpen, ConnClose, Attempt, Sent, Failed, Check, Delivered, Rejected, Refused,
		Greeting, Command, Received, Query, Fault, IdentQuery, Outage, LinkFault}
}

// ValidateJSONL checks every line of an events.jsonl against Schema; the
// error names the first line that does not fit, and why.
func ValidateJSONL(r io.Reader) error {
	sch, err := CompileSchema("events.schema.json", Schema)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(sc.Bytes()))
		if err != nil {
			return fmt.Errorf("line %d: not JSON: %w", n, err)
		}
		if err := sch.Validate(inst); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// CompileSchema compiles the JSON Schema doc, named name in errors, with
// formats asserted (a "date-time" must be one): the one way the lab's
// schemas (this package's, lab/report's result.schema.json) are read.
func CompileSchema(name string, doc []byte) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	s, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.AddResource(name, s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.AssertFormat()
	sch, err := c.Compile(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return sch, nil
}
