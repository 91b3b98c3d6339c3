package dnsstub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// goResolver is Go's own stub resolver, sending everything to addr over
// UDP or TCP as it chooses.
func goResolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func TestGoResolver(t *testing.T) {
	cfg := testConfig()
	cfg.Zone.A["bigger.lab"] = bigList(100)
	_, log, addr := startServer(t, cfg)
	r := goResolver(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A and AAAA.
	addrs, err := r.LookupHost(ctx, "Receiver.Lab.")
	slices.Sort(addrs)
	if err != nil || fmt.Sprint(addrs) != "[10.0.0.3 10.0.0.4 fd00::3]" {
		t.Errorf("LookupHost: %v %v", addrs, err)
	}
	if addrs, err := r.LookupHost(ctx, "v6only.lab."); err != nil || fmt.Sprint(addrs) != "[fd00::6]" {
		t.Errorf("LookupHost v6only: %v %v", addrs, err)
	}
	// Too big for 1232 bytes: Go's resolver gets TC and asks again over TCP.
	if addrs, err := r.LookupHost(ctx, "bigger.lab."); err != nil || len(addrs) != 100 {
		t.Errorf("LookupHost bigger.lab: %d addresses, %v; want 100", len(addrs), err)
	}
	// PTR, v4 and v6.
	if names, err := r.LookupAddr(ctx, "10.0.0.2"); err != nil || fmt.Sprint(names) != "[sender.lab.]" {
		t.Errorf("LookupAddr: %v %v", names, err)
	}
	if names, err := r.LookupAddr(ctx, "fd00::3"); err != nil || fmt.Sprint(names) != "[receiver.lab.]" {
		t.Errorf("LookupAddr v6: %v %v", names, err)
	}
	// MX, sorted by preference.
	mxs, err := r.LookupMX(ctx, "mail.example.com.")
	var got []string
	for _, mx := range mxs {
		got = append(got, fmt.Sprint(mx.Pref, " ", mx.Host))
	}
	if err != nil || fmt.Sprint(got) != "[10 receiver.lab. 20 backup.lab.]" {
		t.Errorf("LookupMX: %v %v", got, err)
	}
	// DNSBL: TXT reason of a listed address, NXDOMAIN for one not listed.
	if txt, err := r.LookupTXT(ctx, "66.0.0.10.bl1.example.net."); err != nil || fmt.Sprint(txt) != "[listed in bl1.example.net]" {
		t.Errorf("LookupTXT: %v %v", txt, err)
	}
	if ips, err := r.LookupIP(ctx, "ip4", "67.0.0.10.bl2.example.net."); err != nil || fmt.Sprint(ips) != "[127.0.0.4]" {
		t.Errorf("LookupIP bl2: %v %v", ips, err)
	}
	for _, name := range []string{"nowhere.lab.", "67.0.0.10.bl1.example.net.", "nothing.invalid."} {
		_, err := r.LookupHost(ctx, name)
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			t.Errorf("LookupHost %s: %v, want a not-found DNSError", name, err)
		}
	}
	// NODATA for both families.
	if _, err := r.LookupHost(ctx, "noaddr.lab."); err == nil {
		t.Error("LookupHost noaddr.lab: no error")
	}
	// bigger.lab was answered twice for A: truncated over UDP, whole over TCP.
	var small, large int
	for _, e := range log.Events() {
		if e.Name == "bigger.lab" && e.QType == "A" {
			if e.SizeOut <= maxUDPSize {
				small++
			} else {
				large++
			}
		}
	}
	if small != 1 || large != 1 {
		t.Errorf("bigger.lab A: %d answers within 1232 bytes and %d beyond, want 1 and 1", small, large)
	}
}
