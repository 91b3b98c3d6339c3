package htmlreport

import (
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/report"
)

// The faults on the mail path get a section only when the run had any:
// the outage, the link, the touched messages (at most slowest, the rest
// counted) and the explained exceptions, all escaped.
func TestMailPathSection(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	r := load(t, courierResult)
	if page := writePage(t, r); strings.Contains(page, `id="mailpath"`) {
		t.Fatal("a mail path section in a run without faults on it")
	}
	zero := r.Messages[0].Queued
	r.Outages = []report.OutageRecord{{Rule: "faults[0]", Seq: 1, Fault: "kill", Role: "receiver", Trigger: evil,
		Began: zero.Add(3 * time.Second), Ended: zero.Add(8 * time.Second), Duration: 5 * time.Second}}
	r.Link = &report.LinkRecord{Losses: 2, LossWait: 300 * time.Millisecond, Conns: []string{"s1"}}
	for i := range 12 {
		r.Messages[i].Faults = []report.MessageFault{{Fault: "kill", Rule: "faults[0]", Role: "receiver", Waited: 2 * time.Second}}
	}
	r.Outcome.Duplicated = []string{"<a> (2 copies) — within SMTP's at-least-once window (RFC 1047): " + evil}
	page := writePage(t, r)
	sec := page[strings.Index(page, `<section id="mailpath">`):]
	sec = sec[:strings.Index(sec, "</section>")]
	for _, w := range []string{
		`<td class="mono">faults[0]</td><td>kill</td><td>receiver</td><td>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td><td class="num">t&#43;3.000 s</td><td class="num">5.00 s</td><td class="num">t&#43;8.000 s</td>`,
		"2 losses (300 ms waited) on s1",
		"Messages touched: 12 of ",
		"<p>and 2 more</p>",
		"2.00 s in faults[0] (kill receiver)",
		"duplicated: &lt;a&gt; (2 copies) — within SMTP&#39;s at-least-once window (RFC 1047): &lt;script&gt;",
	} {
		if !strings.Contains(sec, w) {
			t.Errorf("mail path section:\n%s\nwant it to hold %q", sec, w)
		}
	}
	if n := strings.Count(sec, "<tr><td class=\"mono\">"); n != 1+slowest {
		t.Errorf("%d rows (outages and messages), want 1 + %d", n, slowest)
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("page holds <script unescaped")
	}
}
