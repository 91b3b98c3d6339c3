package sender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/pace"
)

// asSendmail is the first argument that makes the test binary act as
// sendmail: "TESTBIN asSendmail QUEUEDIR sendmail-args...". Inject runs
// sendmail with an empty environment, so the switch is an argument, not
// an environment variable.
const asSendmail = "smtplab-test-as-sendmail"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == asSender {
		os.Exit(runAsSender(os.Args[2]))
	}
	if len(os.Args) >= 3 && os.Args[1] == asSendmail {
		if limit := os.Getenv("SMTPLAB_TEST_FSIZE"); limit != "" {
			// A disk that is full after this many bytes: writes past it
			// fail (EFBIG) instead of killing the process (SIGXFSZ).
			n, _ := strconv.ParseUint(limit, 10, 64)
			signal.Ignore(syscall.SIGXFSZ)
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
				fmt.Fprintln(os.Stderr, "setrlimit:", err)
				os.Exit(2)
			}
		}
		err := Sendmail(os.Args[3:], os.Stdin, os.Args[2], "inject.test")
		var ue *UsageError
		switch {
		case errors.As(err, &ue):
			fmt.Fprintln(os.Stderr, ue.Msg)
			os.Exit(ue.Code)
		case err != nil:
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestInject(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	msgs := sixMessages()
	res := Inject(context.Background(), Injection{Pace: pace.Spec{Mode: pace.Loop}, Messages: msgs}, []string{self, asSendmail, dir})
	if res.Injected != 5 {
		t.Errorf("Injected %d, want 5 (errors: %q)", res.Injected, res.Errors)
	}
	if len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0], "message 4 to not-an-address: exit status 65") {
		t.Errorf("Errors %q, want one for message 4 with exit status 65", res.Errors)
	}

	var got []string
	seen := map[string]bool{}
	for _, m := range queued(t, dir) {
		id, env, text := m.env.ID, m.env, m.text
		if seen[env.MessageID] || !strings.Contains(string(text), "Message-ID: "+env.MessageID+"\n") {
			t.Errorf("message %s: Message-ID %q repeated or not in the text", id, env.MessageID)
		}
		seen[env.MessageID] = true
		if env.From != "loop@src.test" {
			t.Errorf("message %s from %s", id, env.From)
		}
		subject := text[strings.Index(string(text), "Subject: "):]
		got = append(got, strings.Join(env.Rcpts, ",")+" "+strings.SplitN(string(subject), "\n", 2)[0])
	}
	var want []string
	for _, m := range msgs {
		if m.N != 4 {
			want = append(want, fmt.Sprintf("%s Subject: message %d", m.To, m.N))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("queued, in order:\n%q\nwant\n%q", got, want)
	}

	// A cancelled injection runs nothing and says so for every message.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = Inject(ctx, Injection{Pace: pace.Spec{Mode: pace.Rate, PerSecond: 10}, Messages: msgs[:2]}, []string{self, asSendmail, dir})
	if res.Injected != 0 || len(res.Errors) != 2 {
		t.Errorf("cancelled Inject: %+v", res)
	}
	if n := len(queued(t, dir)); n != len(want) {
		t.Errorf("cancelled Inject queued: %d messages, want %d", n, len(want))
	}
}

// InjectExternal runs an outside sendmail (here the test binary acting as
// the lab's) and records what that sendmail does not report: one Queued
// event per message taken, with the Message-ID the loop put in the text
// and the time its sendmail started, in order.
func TestInjectExternal(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var msgs []Message
	for i := 1; i <= 4; i++ {
		to := fmt.Sprintf("user%d@h.test", i)
		if i == 2 {
			to = "not-an-address" // refused: no Queued event
		}
		msgs = append(msgs, Message{Round: 1, N: i, From: "loop@src.test", To: to,
			Data: fmt.Sprintf("From: sender\nTo: recipient\nSubject: test %d\n\ntest %d\n", i, i)})
	}
	var log bytes.Buffer
	res := InjectExternal(context.Background(), Injection{Pace: pace.Spec{Mode: pace.Loop}, Messages: msgs}, SubmitSendmail([]string{self, asSendmail, dir}), "inject.test", &log)
	if res.Injected != 3 || len(res.Errors) != 1 || len(res.Queued) != 3 {
		t.Fatalf("injected %d, errors %q, queued events %d; want 3, 1, 3", res.Injected, res.Errors, len(res.Queued))
	}
	inQueue := map[string]string{} // Message-ID -> recipient, as the queue holds them
	for _, m := range queued(t, dir) {
		id, env, text := m.env.ID, m.env, m.text
		if strings.Count(string(text), "Message-ID: "+env.MessageID+"\n") != 1 || strings.Count(string(text), "Message-ID:") != 1 {
			t.Errorf("message %s does not carry its Message-ID %s once", id, env.MessageID)
		}
		inQueue[env.MessageID] = env.Rcpts[0]
	}
	for i, e := range res.Queued {
		if e.Kind != events.Queued || e.Role != "sender" || !strings.HasSuffix(e.MessageID, "@inject.test>") {
			t.Errorf("event %+v", e)
		}
		if inQueue[e.MessageID] != e.Rcpts[0] {
			t.Errorf("event for %s to %v: the queue has it to %q", e.MessageID, e.Rcpts, inQueue[e.MessageID])
		}
		if i > 0 && e.Time.Before(res.Queued[i-1].Time) {
			t.Errorf("queued events out of order")
		}
	}
	// The same events, one JSON line each as it happened, for a loop the
	// lab stops waiting for.
	logged, err := events.ReadJSONL(&log)
	if err != nil || len(logged) != len(res.Queued) {
		t.Fatalf("log: %d events (%v), want %d", len(logged), err, len(res.Queued))
	}
	for i := range logged {
		if logged[i].MessageID != res.Queued[i].MessageID || !logged[i].Time.Equal(res.Queued[i].Time) {
			t.Errorf("logged %+v, returned %+v", logged[i], res.Queued[i])
		}
	}
}

// blockingSendmail is a sendmail (a shell script: the test binary built
// with -race starts too slowly for 70 of them) that records its start
// and waits: "sh -c SCRIPT sh -f FROM RCPT" writes DIR/started-RCPT, then
// waits until the file DIR/wait-RCPT names exists (if there is one), or
// DIR/release exists when DIR/hold does, for at most 20 s (exit 75 then).
func blockingSendmail(dir string) []string {
	script := `d=` + dir + `; : > "$d/started-$3"; until=
if [ -e "$d/wait-$3" ]; then read -r w < "$d/wait-$3"; until="$d/$w"; elif [ -e "$d/hold" ]; then until="$d/release"; fi
[ -z "$until" ] && exit 0
i=0; while [ $i -lt 2000 ]; do [ -e "$until" ] && exit 0; /bin/sleep 0.01; i=$((i+1)); done; exit 75`
	return []string{"/bin/sh", "-c", script, "sh"}
}

func blockingMessages(n int) []Message {
	var msgs []Message
	for i := 1; i <= n; i++ {
		to := fmt.Sprintf("u%d@h.test", i)
		msgs = append(msgs, Message{Round: 1, N: i, From: "loop@src.test", To: to, Data: "Subject: x\n\nx\n"})
	}
	return msgs
}

// On a rate, injection is open loop: a sendmail that does not return
// never holds back the messages due after it. Here the first message's
// sendmail returns only once the third has started: a loop that waited
// for each sendmail in turn would never start the third, and the first
// would give up (exit 75).
func TestInjectOpenLoop(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "wait-u1@h.test"), []byte("started-u3@h.test"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := pace.Spec{Mode: pace.Rate, PerSecond: 20}
	res := Inject(context.Background(), Injection{Pace: spec, Messages: blockingMessages(3)}, blockingSendmail(dir))
	if res.Injected != 3 || len(res.Errors) != 0 {
		t.Fatalf("injected %d, errors %q: the first sendmail held the third back", res.Injected, res.Errors)
	}
	for i, st := range res.Starts {
		if st.Index != i || st.Due != spec.Due(i) {
			t.Errorf("start %d: %+v, want index %d due %s", i, st, i, spec.Due(i))
		}
	}
}

// A rate the injector cannot keep (2,000 a second, while every sendmail
// hangs until released) is judged not held: at most pace.MaxConcurrent
// sendmails run at once, so the rest start late, and the judgement says
// so.
func TestInjectNotHeld(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hold"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := pace.Spec{Mode: pace.Rate, PerSecond: 2000, MaxLag: 10 * time.Millisecond}
	const n = pace.MaxConcurrent + 6
	began := time.Now()
	started := make(chan int, 1)
	go func() {
		// Release once every slot is taken and well past the bound: the
		// messages after the first MaxConcurrent are then late by
		// construction, however fast the machine.
		var k int
		for {
			files, _ := filepath.Glob(filepath.Join(dir, "started-*"))
			if k = len(files); k >= pace.MaxConcurrent && time.Since(began) > 300*time.Millisecond {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		started <- k
		os.WriteFile(filepath.Join(dir, "release"), nil, 0o644)
	}()
	res := Inject(context.Background(), Injection{Pace: spec, Messages: blockingMessages(n)}, blockingSendmail(dir))
	if k := <-started; k != pace.MaxConcurrent {
		t.Errorf("%d sendmails had started before any returned, want the cap, %d", k, pace.MaxConcurrent)
	}
	if res.Injected != n || len(res.Starts) != n {
		t.Fatalf("injected %d (%d starts), errors %q", res.Injected, len(res.Starts), res.Errors)
	}
	k := pace.Judge(spec, res.Starts)
	if k.Held == nil || *k.Held || k.LagMax <= spec.MaxLag || !strings.Contains(k.NotHeld(), "pace not held") {
		t.Errorf("judged %+v (%q), want not held", k, k.NotHeld())
	}
}

// SubmitSMTP injects over a sender's submission port: one session per
// message, each carrying the Message-ID the loop gave it; a message the
// server refuses is an error of its own, with no Queued event.
func TestInjectOverSMTP(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) {
		f.rcptErr = func(_ int, to string) error {
			if strings.HasPrefix(to, "refused") {
				return &smtp.SMTPError{Code: 550, Message: "no such user"}
			}
			return nil
		}
	})
	var msgs []Message
	for i := 1; i <= 3; i++ {
		to := fmt.Sprintf("user%d@h.test", i)
		if i == 3 {
			to = "refused@h.test"
		}
		msgs = append(msgs, Message{Round: 1, N: i, From: "loop@src.test", To: to, Data: fmt.Sprintf("Subject: test %d\n\ntest %d\n", i, i)})
	}
	res := InjectExternal(context.Background(), Injection{Pace: pace.Spec{Mode: pace.Loop}, Messages: msgs}, SubmitSMTP(f.addr), "inject.test", nil)
	if res.Injected != 2 || len(res.Queued) != 2 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "message 3 to refused@h.test: ") || !strings.Contains(res.Errors[0], "550") {
		t.Fatalf("injected %d, queued %d, errors %q", res.Injected, len(res.Queued), res.Errors)
	}
	got := f.delivered()
	for _, e := range res.Queued {
		if got[e.MessageID+" "+e.Rcpts[0]] != 1 {
			t.Errorf("%s reached the server %d times", e.MessageID, got[e.MessageID])
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.accepted != 3 {
		t.Errorf("%d sessions for 3 messages, want one each", f.accepted)
	}
}

// TestInjectDirectQueuesAsSendmail: the in-process injection queues what
// a sendmail process per message queues: the same envelopes and the same
// text but for each message's own Message-ID and Date, in the same order,
// and refuses the same bad address (as a UsageError with sendmail's exit
// code, where the process exits with it).
func TestInjectDirectQueuesAsSendmail(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	msgs := sixMessages()
	inj := Injection{Pace: pace.Spec{Mode: pace.Loop}, Messages: msgs}
	byProcess, direct := t.TempDir(), t.TempDir()
	pr := Inject(context.Background(), inj, []string{self, asSendmail, byProcess})
	inj.Direct = true
	dr := InjectDirect(context.Background(), inj, direct, "inject.test")
	if pr.Injected != 5 || dr.Injected != 5 {
		t.Fatalf("injected %d by process, %d direct; want 5 each", pr.Injected, dr.Injected)
	}
	if len(dr.Errors) != 1 || !strings.HasPrefix(dr.Errors[0], "message 4 to not-an-address: sendmail: ") {
		t.Errorf("direct errors %q, want one for message 4 saying what sendmail says", dr.Errors)
	}
	if len(dr.Starts) != len(msgs) {
		t.Errorf("direct: %d starts recorded, want %d", len(dr.Starts), len(msgs))
	}
	stamped := regexp.MustCompile(`(?m)^(Message-ID|Date): .*\n`)
	read := func(dir string) []string {
		var out []string
		for _, m := range queued(t, dir) {
			id, env, text := m.env.ID, m.env, m.text
			if !strings.Contains(string(text), "Message-ID: "+env.MessageID+"\n") {
				t.Errorf("%s: Message-ID %s not in the text", id, env.MessageID)
			}
			out = append(out, fmt.Sprintf("%s -> %v\n%s", env.From, env.Rcpts, stamped.ReplaceAllString(string(text), "")))
		}
		return out
	}
	if a, b := read(byProcess), read(direct); !slices.Equal(a, b) {
		t.Errorf("queued by process:\n%q\ndirect:\n%q", a, b)
	}
}

// sixMessages is a workload of six messages to two hosts, the fourth to
// an address sendmail refuses.
func sixMessages() []Message {
	var msgs []Message
	for i := 1; i <= 6; i++ {
		to := fmt.Sprintf("user%d@h%d.test", i, i%2)
		if i == 4 {
			to = "not-an-address"
		}
		msgs = append(msgs, Message{Round: 1, N: i, From: "loop@src.test", To: to,
			Data: fmt.Sprintf("From: loop@src.test\nTo: %s\nSubject: message %d\n\nbody %d\n", to, i, i)})
	}
	return msgs
}

// queuedMessage is a message in a queue: its envelope and its text.
type queuedMessage struct {
	env  Envelope
	text []byte
}

// queued reads every message of the queue in dir, in injection order.
func queued(t *testing.T, dir string) []queuedMessage {
	t.Helper()
	q := openQueue(t, dir)
	var out []queuedMessage
	for _, id := range queueIDs(t, q) {
		env, err := q.Envelope(id)
		if err != nil {
			t.Fatal(err)
		}
		text, err := q.Text(id)
		if err != nil {
			t.Fatal(err)
		}
		env.ID = id
		out = append(out, queuedMessage{env, text})
	}
	return out
}
