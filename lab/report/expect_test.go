package report

import (
	"reflect"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/scenario"
)

func intp(n int) *int { return &n }

func durp(d time.Duration) *duration.Duration { v := duration.Duration(d); return &v }

// Each expectation at its bound, just inside and just outside it.
func TestCheckBounds(t *testing.T) {
	const sec, us = time.Second, time.Microsecond
	cases := []struct {
		name   string
		expect scenario.Expect
		s      Summary
		want   Verdict
	}{
		{"delivered at", scenario.Expect{Delivered: intp(200)}, Summary{Delivered: 200}, Verdict{"delivered", "= 200", "200", true}},
		{"delivered under", scenario.Expect{Delivered: intp(200)}, Summary{Delivered: 199}, Verdict{"delivered", "= 200", "199", false}},
		{"delivered over", scenario.Expect{Delivered: intp(200)}, Summary{Delivered: 201}, Verdict{"delivered", "= 200", "201", false}},
		{"delivered 0", scenario.Expect{Delivered: intp(0)}, Summary{}, Verdict{"delivered", "= 0", "0", true}},

		{"total time at", scenario.Expect{MaxTotalTime: durp(30 * sec)}, Summary{TotalTime: 30 * sec}, Verdict{"max_total_time", "<= 30 s", "30 s", true}},
		{"total time under", scenario.Expect{MaxTotalTime: durp(30 * sec)}, Summary{TotalTime: 30*sec - us}, Verdict{"max_total_time", "<= 30 s", "29.999999 s", true}},
		{"total time over", scenario.Expect{MaxTotalTime: durp(30 * sec)}, Summary{TotalTime: 30*sec + us}, Verdict{"max_total_time", "<= 30 s", "30.000001 s", false}},
		{"total time over by less than shown", scenario.Expect{MaxTotalTime: durp(30 * sec)}, Summary{TotalTime: 30*sec + 400*time.Nanosecond}, Verdict{"max_total_time", "<= 30 s", "30 s", true}},

		{"connections at", scenario.Expect{MaxConnections: intp(57)}, Summary{Connections: 57}, Verdict{"max_connections", "<= 57", "57", true}},
		{"connections under", scenario.Expect{MaxConnections: intp(57)}, Summary{Connections: 56}, Verdict{"max_connections", "<= 57", "56", true}},
		{"connections over", scenario.Expect{MaxConnections: intp(57)}, Summary{Connections: 58}, Verdict{"max_connections", "<= 57", "58", false}},
		{"connections 0 of 0", scenario.Expect{MaxConnections: intp(0)}, Summary{}, Verdict{"max_connections", "<= 0", "0", true}},

		{"p99 at", scenario.Expect{MaxLatencyP99: durp(150 * time.Millisecond)}, Summary{Latency: Latency{P99: 150 * time.Millisecond}},
			Verdict{"max_latency_p99", "<= 150 ms", "150 ms", true}},
		{"p99 under", scenario.Expect{MaxLatencyP99: durp(150 * time.Millisecond)}, Summary{Latency: Latency{P99: 150*time.Millisecond - us}},
			Verdict{"max_latency_p99", "<= 150 ms", "149.999 ms", true}},
		{"p99 over", scenario.Expect{MaxLatencyP99: durp(150 * time.Millisecond)}, Summary{Latency: Latency{P99: 150*time.Millisecond + us}},
			Verdict{"max_latency_p99", "<= 150 ms", "150.001 ms", false}},

		{"rate at", scenario.Expect{MinMessagesPerSecond: 3}, Summary{MessagesPerSecond: 3}, Verdict{"min_messages_per_second", ">= 3", "3.00", true}},
		{"rate under", scenario.Expect{MinMessagesPerSecond: 3}, Summary{MessagesPerSecond: 2.99}, Verdict{"min_messages_per_second", ">= 3", "2.99", false}},
		{"rate over", scenario.Expect{MinMessagesPerSecond: 3}, Summary{MessagesPerSecond: 3.01}, Verdict{"min_messages_per_second", ">= 3", "3.01", true}},
		{"rate fraction", scenario.Expect{MinMessagesPerSecond: 2.5}, Summary{MessagesPerSecond: 196.0 / 65}, Verdict{"min_messages_per_second", ">= 2.5", "3.02", true}},
		{"rate just under, shown in full", scenario.Expect{MinMessagesPerSecond: 10}, Summary{MessagesPerSecond: 9.999}, Verdict{"min_messages_per_second", ">= 10", "9.999", false}},

		{"queries at", scenario.Expect{MaxDNSQueries: intp(228)}, Summary{DNSQueries: 228}, Verdict{"max_dns_queries", "<= 228", "228", true}},
		{"queries under", scenario.Expect{MaxDNSQueries: intp(228)}, Summary{DNSQueries: 227}, Verdict{"max_dns_queries", "<= 228", "227", true}},
		{"queries over", scenario.Expect{MaxDNSQueries: intp(228)}, Summary{DNSQueries: 229}, Verdict{"max_dns_queries", "<= 228", "229", false}},

		{"held at", scenario.Expect{MaxHeldByFaults: intp(4)}, Summary{HeldByFaults: 4}, Verdict{"max_held_by_faults", "<= 4", "4", true}},
		{"held under", scenario.Expect{MaxHeldByFaults: intp(4)}, Summary{HeldByFaults: 3}, Verdict{"max_held_by_faults", "<= 4", "3", true}},
		{"held over", scenario.Expect{MaxHeldByFaults: intp(4)}, Summary{HeldByFaults: 5}, Verdict{"max_held_by_faults", "<= 4", "5", false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := Check(c.expect, c.s, Outcome{})
			if len(vs) != 1 || vs[0] != c.want {
				t.Errorf("got %+v\nwant [%+v]", vs, c.want)
			}
			if failed := len(Failed(vs)) > 0; failed == c.want.OK {
				t.Errorf("Failed gives %v for a verdict OK=%v", Failed(vs), c.want.OK)
			}
		})
	}
}

// none_lost fails on any kind of outcome entry and says how many of each.
func TestCheckNoneLost(t *testing.T) {
	const want = "no message lost, duplicated or failed"
	cases := []struct {
		name string
		o    Outcome
		got  string
	}{
		{"none", Outcome{}, "none"},
		{"lost", Outcome{Lost: []string{"<a>", "<b>"}}, "2 lost, 0 duplicated, 0 unexpected, 0 failed, 0 not queued"},
		{"duplicated", Outcome{Duplicated: []string{"<a> (2 copies)"}}, "0 lost, 1 duplicated, 0 unexpected, 0 failed, 0 not queued"},
		{"unexpected", Outcome{Unexpected: []string{"<x>"}}, "0 lost, 0 duplicated, 1 unexpected, 0 failed, 0 not queued"},
		{"failed", Outcome{Failed: []string{"<a>: 550"}}, "0 lost, 0 duplicated, 0 unexpected, 1 failed, 0 not queued"},
		{"not queued", Outcome{NotQueued: []string{"message 4: refused"}}, "0 lost, 0 duplicated, 0 unexpected, 0 failed, 1 not queued"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := Check(scenario.Expect{NoneLost: true}, Summary{Delivered: 200}, c.o)
			v := Verdict{"none_lost", want, c.got, c.o.OK()}
			if len(vs) != 1 || vs[0] != v {
				t.Errorf("got %+v\nwant [%+v]", vs, v)
			}
		})
	}
	if vs := Check(scenario.Expect{}, Summary{}, Outcome{Lost: []string{"<a>"}}); len(vs) != 0 {
		t.Errorf("nothing expected, got verdicts %+v", vs)
	}
}

// Verdicts come in the order Expect declares its fields, and print as
// one line each.
func TestCheckOrderAndString(t *testing.T) {
	e := scenario.Expect{Delivered: intp(196), NoneLost: true, MaxTotalTime: durp(3 * time.Second), MaxConnections: intp(57),
		MaxLatencyP99: durp(time.Second), MinMessagesPerSecond: 1, MaxDNSQueries: intp(300), MaxHeldByFaults: intp(0)}
	s := Summary{Delivered: 196, TotalTime: 3*time.Second + 1234*time.Nanosecond, Connections: 57, MessagesPerSecond: 65,
		Latency: Latency{P99: time.Second}, DNSQueries: 228}
	vs := Check(e, s, Outcome{})
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	order := []string{"delivered", "none_lost", "max_total_time", "max_connections", "max_latency_p99",
		"min_messages_per_second", "max_dns_queries", "max_held_by_faults"}
	if !reflect.DeepEqual(names, order) {
		t.Fatalf("verdicts %q, want %q", names, order)
	}
	// To the microsecond, so the failed figure never reads as its bound.
	tt := vs[2]
	if tt.Want != "<= 3 s" || tt.Got != "3.000001 s" || tt.OK {
		t.Errorf("total time verdict %+v", tt)
	}
	if got, want := tt.String(), "expect FAILED max_total_time <= 3 s: got 3.000001 s"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	if got, want := vs[0].String(), "expect ok     delivered = 196: got 196"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	if f := Failed(vs); len(f) != 1 || f[0].Name != "max_total_time" {
		t.Errorf("failed %+v, want only max_total_time", f)
	}
}
