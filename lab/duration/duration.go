// Package duration is the one way the lab writes a length of time in a
// scenario, a role's configuration and a result: as Go writes it ("150ms",
// "5s", "2m"), in YAML and in JSON alike, so a role's settings can be one
// type shared by the scenario (YAML) and the role's spec (JSON).
package duration

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
		pe := &PositionError{Msg: fmt.Sprintf("%q is not a duration (write it like 150ms, 5s or 2m)", s)}
		if tk := n.GetToken(); tk != nil {
			pe.Line, pe.Col = tk.Position.Line, tk.Position.Column
		}
		return pe
	}
	*d = Duration(v)
	return nil
}

// PositionError is a bad duration in a YAML file, with the line and column
// of the value.
type PositionError struct {
	Line, Col int
	Msg       string
}

func (e *PositionError) Error() string { return e.Msg }

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
