package role

import (
	"slices"
	"strings"
	"testing"
)

// A POST /inject body's places (a sender's share of a workload split
// among several) are outside input too: one per message, none negative,
// none twice, or the body is refused saying which.
func TestDecodeInjectionPlaces(t *testing.T) {
	const two = `"messages":[{"Round":1,"N":1,"From":"a@b","To":"c@d","Data":"x"},{"Round":1,"N":2,"From":"a@b","To":"e@d","Data":"y"}]`
	for _, tc := range []struct {
		body, err string
		places    []int
	}{
		{`{"pace":{"mode":"rate","per_second":3},` + two + `}`, "", nil},
		{`{"pace":{"mode":"rate","per_second":3},` + two + `,"places":[4,1]}`, "", []int{4, 1}},
		{`{"pace":{"mode":"rate","per_second":3},` + two + `,"places":[4]}`, "inject: places: 1 for 2 messages, want one per message", nil},
		{`{"pace":{"mode":"rate","per_second":3},` + two + `,"places":[]}`, "inject: places: 0 for 2 messages", nil},
		{`{"pace":{"mode":"burst"},` + two + `,"places":[0,-3]}`, "inject: places[1]: -3 is not a place in a workload (0 or more)", nil},
		{`{"pace":{"mode":"loop"},` + two + `,"places":[7,7]}`, "inject: places[1]: 7 given twice", nil},
		{`{"pace":{"mode":"loop"},` + two + `,"places":[0,1.5]}`, "inject: ", nil},
		{`{"pace":{"mode":"loop"},"places":[0]}`, "inject: places: 1 for 0 messages", nil},
	} {
		inj, err := DecodeInjection(strings.NewReader(tc.body))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.body, err)
		case tc.err == "" && (!slices.Equal(inj.Places, tc.places) || len(inj.Messages) != 2):
			t.Errorf("%s: places %v and %d messages, want places %v and 2", tc.body, inj.Places, len(inj.Messages), tc.places)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%s: got %v, want an error starting %q", tc.body, err, tc.err)
		}
	}
}
