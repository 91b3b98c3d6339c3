package report

import (
	"bytes"
	_ "embed"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is the JSON Schema of result.json (result.schema.json), for
// SchemaVersion.
//
//go:embed result.schema.json
var Schema []byte

// Validate checks a result.json document against Schema; the error lists
// every field that does not fit, by its JSON path.
func Validate(doc []byte) error {
	c := jsonschema.NewCompiler()
	s, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		return fmt.Errorf("result schema: %w", err)
	}
	const url = "result.schema.json"
	if err := c.AddResource(url, s); err != nil {
		return fmt.Errorf("result schema: %w", err)
	}
	c.AssertFormat()
	sch, err := c.Compile(url)
	if err != nil {
		return fmt.Errorf("result schema: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return err
	}
	return nil
}
