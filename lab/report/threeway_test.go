package report

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSideHeading(t *testing.T) {
	for _, c := range []struct {
		receiver, sender, want string
	}{
		{"go", "go", "Go model"},
		{"courier", "courier", "real Courier"},
		{"postfix", "postfix", "real Postfix"},
		{"postfix", "courier", "real Courier S -> real Postfix R"},
		{"courier", "go", "Go model S -> real Courier R"},
		{"go", "courier", "real Courier S -> Go model R"},
	} {
		if got := (Side{Receiver: c.receiver, Sender: c.sender}).Heading(); got != c.want {
			t.Errorf("Side{R %s, S %s}.Heading() = %q, want %q", c.receiver, c.sender, got, c.want)
		}
	}
}

// modelSummary is a Go model run's figures: every field WriteThreeWay shows
// is set, and to a value no other column has, so a cell taken from the
// wrong column shows.
var modelSummary = Summary{
	Injected: 200, Delivered: 198,
	TotalTime:             42 * time.Second,
	MessagesPerSecond:     4.71,
	Connections:           61,
	SenderConnections:     12,
	SenderReused:          186,
	MessagesPerConn:       3.3,
	DNSQueries:            244,
	DNSQueriesByType:      map[string]int{"PTR": 61, "A": 61, "DNSBL": 122},
	LookupsPerConnection:  4,
	IdentQueries:          61,
	Latency:               Latency{P50: 150 * time.Millisecond, P90: 2 * time.Second, P99: 12500 * time.Millisecond, Max: 51 * time.Second},
	DeliveredLateMessages: 5,
	Faults:                map[string]int{"stall": 1},
	HeldByFaults:          3,
}

// realSummary is a real MTAs' run. Its sender connections, IDENT lookups and
// held messages are 0, as a run with no evidence for them leaves them; the
// table must not show those 0s as measured where the MTA gives no evidence
// (the case's Unmeasured).
var realSummary = Summary{
	Injected: 200, Delivered: 200,
	TotalTime:             8510 * time.Millisecond,
	MessagesPerSecond:     23.5,
	Connections:           17,
	MessagesPerConn:       11.8,
	DNSQueries:            34,
	DNSQueriesByType:      map[string]int{"PTR": 17, "A": 17},
	LookupsPerConnection:  2,
	Latency:               Latency{P50: 300 * time.Millisecond, P90: 800 * time.Millisecond, P99: 1200 * time.Millisecond, Max: 1500 * time.Millisecond},
	DeliveredLateMessages: 0,
}

// tableCell splits WriteThreeWay's lines into cells: tabwriter pads cells
// with at least two spaces, and no cell holds two spaces in a row.
var tableCell = regexp.MustCompile(`\s{2,}`)

// threeWay runs WriteThreeWay and returns its title, column headings and
// rows (name -> the Go model, real MTAs and 1999 cells).
func threeWay(t *testing.T, model, real Side) (title string, head []string, rows map[string][]string, ratios map[string]string) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteThreeWay(&b, "scenario x: three ways", model, real, ""); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) < 4 || lines[1] != "" {
		t.Fatalf("want a title, a blank line, a heading and rows; got\n%s", b.String())
	}
	head = tableCell.Split(strings.TrimSpace(lines[2]), -1)
	if len(head) == 4 && head[2] == RatioHeading {
		head = []string{head[0], head[1], head[3]}
	}
	rows, ratios = map[string][]string{}, map[string]string{}
	for _, l := range lines[3:] {
		cells := tableCell.Split(l, -1)
		if len(cells) != 5 {
			t.Fatalf("row %q has %d cells, want a name and four columns", l, len(cells))
		}
		if _, dup := rows[cells[0]]; dup {
			t.Fatalf("row %q twice", cells[0])
		}
		// The ratio column is checked on its own (TestThreeWayRatios).
		rows[cells[0]] = []string{cells[1], cells[2], cells[4]}
		ratios[cells[0]] = cells[3]
	}
	return lines[0], head, rows, ratios
}

// The 1999 column is the 1999 benchmark's figures, whatever the runs'
// (Seed1999).
var want1999 = map[string]string{
	"delivered / injected":                                   "196 / 200",
	"total time (first injection to last delivery)":          "65.00 s",
	"messages per second":                                    "3.0",
	"ESMTP connections (receiver)":                           "57",
	"sender connections: opened, messages over a reused one": "57, not reported",
	"messages per connection":                                "3.4",
	"DNS lookups":                                            "not measured",
	"DNS lookups per connection":                             "4",
	"IDENT lookups":                                          "one per connection",
	"delivery latency p50 / p90 / p99":                       "not reported",
	"delivery latency p50":                                   "not reported",
	"delivery latency max":                                   "50-75 s",
	"messages over 10 s":                                     "4",
	"faults applied":                                         "one stalled DNS query",
	"messages held by a faulted query":                       "4",
}

// wantModel is the Go model column for modelSummary: every figure measured.
var wantModel = map[string]string{
	"delivered / injected":                                   "198 / 200",
	"total time (first injection to last delivery)":          "42.00 s",
	"messages per second":                                    "4.7",
	"ESMTP connections (receiver)":                           "61",
	"sender connections: opened, messages over a reused one": "12, 186",
	"messages per connection":                                "3.3",
	"DNS lookups":                                            "244 (A 61, DNSBL 122, PTR 61)",
	"DNS lookups per connection":                             "4.0",
	"IDENT lookups":                                          "61",
	"delivery latency p50 / p90 / p99":                       "150 ms / 2.00 s / 12.50 s",
	"delivery latency p50":                                   "150 ms",
	"delivery latency max":                                   "51.00 s",
	"messages over 10 s":                                     "5",
	"faults applied":                                         "stall 1",
	"messages held by a faulted query":                       "3",
}

// realColumn is the real MTAs' column for realSummary, with the cells
// that depend on which MTA plays which role given by the case.
func realColumn(sender, ident, faults, held string) map[string]string {
	return map[string]string{
		"delivered / injected":                                   "200 / 200",
		"total time (first injection to last delivery)":          "8.51 s",
		"messages per second":                                    "23.5",
		"ESMTP connections (receiver)":                           "17",
		"sender connections: opened, messages over a reused one": sender,
		"messages per connection":                                "11.8",
		"DNS lookups":                                            "34 (A 17, PTR 17)",
		"DNS lookups per connection":                             "2.0",
		"IDENT lookups":                                          ident,
		"delivery latency p50 / p90 / p99":                       "300 ms / 800 ms / 1.20 s",
		"delivery latency p50":                                   "300 ms",
		"delivery latency max":                                   "1.50 s",
		"messages over 10 s":                                     "0",
		"faults applied":                                         faults,
		"messages held by a faulted query":                       held,
	}
}

func TestWriteThreeWay(t *testing.T) {
	model := Side{Receiver: "go", Sender: "go", Summary: modelSummary}
	senderNotMeasured, heldNotMeasured := NotMeasured(KeySenderConnections), NotMeasured(KeyHeldByFaults)
	stall := map[string]int{"stall": 1}
	for _, c := range []struct {
		name             string
		receiver, sender string
		faults           map[string]int
		unmeasured       []string // as Build leaves them for these roles and faults
		heading          string
		want             map[string]string
	}{
		{
			name: "real Courier in both roles", receiver: "courier", sender: "courier", faults: stall,
			unmeasured: []string{KeySenderConnections, KeySenderReused, KeySenderCloses, KeyHeldByFaults},
			heading:    "real Courier",
			want:       realColumn(senderNotMeasured, "0", "stall 1", heldNotMeasured),
		},
		{
			name: "real Courier S to real Postfix R", receiver: "postfix", sender: "courier", faults: stall,
			unmeasured: []string{KeySenderConnections, KeySenderReused, KeySenderCloses, KeyHeldByFaults},
			heading:    "real Courier S -> real Postfix R",
			want:       realColumn(senderNotMeasured, "none: Postfix makes no IDENT lookup", "stall 1", heldNotMeasured),
		},
		{
			// No query was delayed: none was held, a measured 0.
			name: "Go sender to real Postfix R, no fault", receiver: "postfix", sender: "go",
			heading: "Go model S -> real Postfix R",
			want:    realColumn("9, 0", "none: Postfix makes no IDENT lookup", "none", "0"),
		},
		{
			name: "real Courier S to the Go receiver", receiver: "go", sender: "courier", faults: stall,
			unmeasured: []string{KeySenderConnections, KeySenderReused, KeySenderCloses},
			heading:    "real Courier S -> Go model R",
			want:       realColumn(senderNotMeasured, "0", "stall 1", "0"),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			sum := realSummary
			// A count where the figure is unmeasured must not show.
			sum.SenderConnections, sum.Faults, sum.Unmeasured = 9, c.faults, c.unmeasured
			title, head, rows, _ := threeWay(t, model, Side{Receiver: c.receiver, Sender: c.sender, Summary: sum})
			if title != "scenario x: three ways" {
				t.Errorf("title %q", title)
			}
			if want := []string{"Go model", c.heading, "1999"}; strings.Join(head, "|") != strings.Join(want, "|") {
				t.Errorf("headings %q, want %q", head, want)
			}
			if len(rows) != len(want1999) {
				t.Errorf("%d rows, want %d (no line floor row without a line)", len(rows), len(want1999))
			}
			for name, want := range map[int]map[string]string{0: wantModel, 1: c.want, 2: want1999} {
				for row, cell := range want {
					got, ok := rows[row]
					if !ok {
						t.Errorf("no row %q", row)
						continue
					}
					if got[name] != cell {
						t.Errorf("%q, column %q: %q, want %q", row, []string{"Go model", c.heading, "1999"}[name], got[name], cell)
					}
				}
			}
		})
	}
}

// The DNS line floor row appears when either run had a line, and only then.
func TestWriteThreeWayLineFloor(t *testing.T) {
	const row = "DNS line floor"
	for _, c := range []struct {
		name        string
		model, real time.Duration
		want        []string // nil: no row
	}{
		{"no line", 0, 0, nil},
		{"the model's line", 1500 * time.Millisecond, 0, []string{"1.50 s", "0 s", "not reported"}},
		{"the real run's line", 0, 250 * time.Millisecond, []string{"0 s", "250 ms", "not reported"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, r := modelSummary, realSummary
			m.LineFloor, r.LineFloor = c.model, c.real
			_, _, rows, _ := threeWay(t, Side{Receiver: "go", Sender: "go", Summary: m}, Side{Receiver: "courier", Sender: "courier", Summary: r})
			got, ok := rows[row]
			switch {
			case c.want == nil && ok:
				t.Errorf("a %q row %q without a line", row, got)
			case c.want != nil && strings.Join(got, "|") != strings.Join(c.want, "|"):
				t.Errorf("%q row %q, want %q", row, got, c.want)
			}
		})
	}
}

func TestRealMTANotes(t *testing.T) {
	const (
		identNote  = "IDENT lookups: none, not a measured 0"
		senderNote = "the sender is real Courier: it logs no connections"
	)
	receiverNote := func(mta string) string { return "the receiver is " + mta + ": connections come from its mail log" }
	for _, c := range []struct {
		receiver, sender string
		evidence         string
		want             []string // each note's start, in order
	}{
		{"go", "go", "", nil},
		{"courier", "go", "", []string{receiverNote("real Courier")}},
		{"courier", "courier", "", []string{receiverNote("real Courier"), senderNote}},
		{"postfix", "go", "", []string{identNote, receiverNote("real Postfix")}},
		{"postfix", "courier", "", []string{identNote, receiverNote("real Postfix"), senderNote}},
		{"go", "courier", "", []string{senderNote}},
		{"image", "go", "", []string{"the receiver is an image the lab knows nothing of: deliveries and their times come from the Maildir the scenario names"}},
		{"image", "go", "relay", []string{"the receiver is an image the lab knows nothing of, relaying every message to the lab's final receiver (the relay topology): deliveries and their times come from there"}},
		{"image", "go", "mbox", []string{"the receiver is an image the lab knows nothing of: deliveries come from the mbox the scenario names"}},
		{"external", "go", "relay", []string{"the receiver is a server outside Docker the lab knows nothing of: deliveries and their times come from the lab's final receiver it relays to"}},
	} {
		got := RealMTANotes(c.receiver, c.sender, c.evidence)
		ok := len(got) == len(c.want)
		for i := 0; ok && i < len(got); i++ {
			ok = strings.HasPrefix(got[i], c.want[i])
		}
		if !ok {
			t.Errorf("RealMTANotes(%s, %s) =\n%s\nwant notes starting\n%s", c.receiver, c.sender,
				strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
		// A real receiver's note says what is not traced; the model's
		// receiver has no such note.
		traced := strings.Contains(strings.Join(got, "\n"), "messages held by a faulted query are not traced")
		if traced != (c.receiver != "go") {
			t.Errorf("RealMTANotes(%s, %s): says held messages are not traced: %v", c.receiver, c.sender, traced)
		}
	}
}

// The ratio column divides the model's figure by the real run's where both
// are numbers, says "-" where a figure does not divide, and never divides
// by a real 0.
func TestThreeWayRatios(t *testing.T) {
	m, r := modelSummary, realSummary
	r.DeliveredLateMessages = 0
	_, head, _, ratios := threeWay(t, Side{Receiver: "go", Sender: "go", Summary: m}, Side{Receiver: "courier", Sender: "courier", Summary: r})
	if len(head) != 3 {
		t.Fatalf("headings %q", head)
	}
	for row, want := range map[string]string{
		"total time (first injection to last delivery)": "4.94x", // 42.00 s / 8.51 s
		"ESMTP connections (receiver)":                  "3.59x", // 61 / 17
		"DNS lookups per connection":                    "2.00x", // 4.0 / 2.0
		"delivery latency p50":                          "0.50x", // 150 ms / 300 ms
		"messages over 10 s":                            "-",     // 5 / 0
		"IDENT lookups":                                 "-",     // 61 / 0
		"delivered / injected":                          "-",
		"faults applied":                                "-",
	} {
		if got := ratios[row]; got != want {
			t.Errorf("%q: ratio %q, want %q", row, got, want)
		}
	}
}

// TestThreeWayWithout1999: for another workload than 1999's the 1999
// column is left out, with the reason, as WriteText leaves it out.
func TestThreeWayWithout1999(t *testing.T) {
	model := Side{Receiver: "go", Sender: "go", Summary: modelSummary}
	real := Side{Receiver: "courier", Sender: "courier", Summary: modelSummary}
	var b bytes.Buffer
	why := "this workload is not 1999's: workload.rounds 50 (1999: 10)"
	if err := WriteThreeWay(&b, "scenario x: three ways", model, real, why); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	head := tableCell.Split(strings.TrimSpace(lines[2]), -1)
	if want := []string{"Go model", "real Courier", RatioHeading}; !slices.Equal(head, want) {
		t.Errorf("heading %q, want %q", head, want)
	}
	for _, l := range lines[3 : len(lines)-1] {
		if cells := tableCell.Split(l, -1); len(cells) != 4 {
			t.Errorf("row %q has %d cells, want a name and three columns", l, len(cells))
		}
	}
	if last := lines[len(lines)-1]; last != "(no 1999 column: "+why+")" {
		t.Errorf("last line %q, want the reason", last)
	}
	if strings.Contains(b.String(), "196 / 200") {
		t.Errorf("1999's figures shown:\n%s", b.String())
	}
}
