package lab

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/htmlreport"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// addrs are the lab's services' addresses on its network, as far as they
// are known: a role's spec needs only those of the roles it talks to.
type addrs struct{ dns, receiver, sender string }

// roleSpec is the spec of the Go role called name (a topology service)
// for sc: the one description of each role's configuration, whether
// testcontainers-go starts the roles (Run) or docker compose does
// (RunCompose). The receiver needs a.dns; the sender a.receiver and a.dns.
func roleSpec(sc scenario.Scenario, name string, a addrs) role.Spec {
	s, _ := topology.ByName(name)
	spec := role.Spec{Role: name, Listen: s.Listen, Control: ":" + s.Control}
	switch name {
	case role.DNS:
		bls := make([]dnsstub.Blacklist, len(sc.DNS.Blacklists))
		for i, b := range sc.DNS.Blacklists {
			bls[i] = dnsstub.Blacklist{Zone: b.Zone, Listed: b.Listed, Code: b.Code, Reason: b.Reason}
		}
		spec.DNS = &dnsstub.Config{QueryDelay: sc.DNS.QueryDelay.D(), Blacklists: bls, Faults: sc.FaultSpecs(), Seed: sc.Seed,
			Origins: []string{sc.DNS.LabDomain, "example.com"}}
		if sc.DNS.Line.Enabled {
			lc := sc.LineConfig()
			spec.DNS.Line = &lc
		}
	case role.Receiver:
		spec.Receiver = ptr(receiverConfig(sc, a.dns))
	case role.Sender:
		spec.Sender = ptr(senderConfig(sc, a.receiver, a.dns))
	case role.Identd:
		spec.Identd = ptr(sc.IdentdConfig())
	}
	return spec
}

// zoneFor is the DNS stub's view of the live topology: A and PTR records
// for the lab's hosts, every workload host name pointing at the receiver,
// and the scenario's own records.
func zoneFor(sc scenario.Scenario, a addrs) dnsstub.Zone {
	zone := dnsstub.Zone{A: map[string][]string{}, PTR: map[string]string{}, Extra: sc.DNS.Records}
	for _, h := range []struct{ role, ip string }{{role.DNS, a.dns}, {role.Receiver, a.receiver}, {role.Sender, a.sender}} {
		name := h.role + "." + sc.DNS.LabDomain
		zone.A[name] = []string{h.ip}
		zone.PTR[h.ip] = name
	}
	zone.A[sc.Receiver.Hostname] = []string{a.receiver}
	zone.A[sc.Sender.Hostname] = []string{a.sender}
	zone.PTR[a.receiver] = sc.Receiver.Hostname
	zone.PTR[a.sender] = sc.Sender.Hostname
	for _, h := range sc.Workload.Hosts() {
		zone.A[h] = []string{a.receiver}
	}
	// The envelope sender's domain resolves too (a receiver with
	// BOFHCHECKDNS on asks): to the sending host.
	if from := sc.Workload.From; strings.Contains(from, "@") {
		if d := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:]); zone.A[d] == nil {
			zone.A[d] = []string{a.sender}
		}
	}
	return zone
}

// newResult is a run's result before anything ran: its id (the scenario's
// name and the start time), the scenario, and where it will be written.
func newResult(sc scenario.Scenario, start time.Time, resultsDir string, env report.Environment) *Result {
	runID := strings.ReplaceAll(fmt.Sprintf("%s-%s", sc.Name, start.UTC().Format("20060102-150405.000")), ".", "")
	env.GoVersion = runtime.Version()
	env.OS = runtime.GOOS + "/" + runtime.GOARCH
	if env.CPUs == 0 {
		env.CPUs = runtime.NumCPU()
	}
	return &Result{
		Schema: report.SchemaVersion, RunID: runID, Scenario: sc, Started: start, Seed1999: report.Seed1999,
		Expectations: []report.Verdict{}, Records: report.BuildRecords(report.Inputs{}),
		Environment: env, Dir: filepath.Join(orDefault(resultsDir, "results"), runID),
	}
}

// writeResult puts res in its folder, whatever happened: result.json
// (with err's text), events.jsonl and report.html. It returns err with
// any failure to write joined.
func writeResult(res *Result, lastDelivery time.Time, err error) error {
	res.Overhead.DeliveryToExit = time.Since(lastDelivery)
	if err != nil {
		res.Error = err.Error()
	}
	if werr := res.Write(); werr != nil {
		err = errors.Join(err, werr)
	}
	if werr := htmlreport.WriteFile(res); werr != nil {
		err = errors.Join(err, werr)
	}
	return err
}
