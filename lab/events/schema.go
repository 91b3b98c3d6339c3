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
	c := jsonschema.NewCompiler()
	s, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		return fmt.Errorf("events schema: %w", err)
	}
	const url = "events.schema.json"
	if err := c.AddResource(url, s); err != nil {
		return fmt.Errorf("events schema: %w", err)
	}
	c.AssertFormat()
	sch, err := c.Compile(url)
	if err != nil {
		return fmt.Errorf("events schema: %w", err)
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
