package scenario

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Duration is a time.Duration written as Go writes it ("150ms", "5s",
// "2m"). A bare number is refused: its unit would be a guess.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a duration string; a bad one is an error carrying
// the value's position in the file.
func (d *Duration) UnmarshalYAML(n ast.Node) error {
	s := strings.Trim(strings.TrimSpace(n.String()), `"'`)
	v, err := time.ParseDuration(s)
	if err != nil {
		pe := &positionError{msg: fmt.Sprintf("%q is not a duration (write it like 150ms, 5s or 2m)", s)}
		if tk := n.GetToken(); tk != nil {
			pe.line, pe.col = tk.Position.Line, tk.Position.Column
		}
		return pe
	}
	*d = Duration(v)
	return nil
}

// positionError is a decoding error found by this package's own
// unmarshalers, with the line and column of the bad value.
type positionError struct {
	line, col int
	msg       string
}

func (e *positionError) Error() string { return e.msg }

// MarshalJSON writes the duration as a string, as the YAML has it.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}
