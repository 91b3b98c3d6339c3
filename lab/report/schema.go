package report

import (
	"bytes"
	_ "embed"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/smtplab/smtplab/lab/events"
)

// Schema is the JSON Schema of result.json (result.schema.json), for
// SchemaVersion.
//
//go:embed result.schema.json
var Schema []byte

// Validate checks a result.json document against Schema; the error lists
// every field that does not fit, by its JSON path.
func Validate(doc []byte) error {
	sch, err := events.CompileSchema("result.schema.json", Schema)
	if err != nil {
		return err
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
