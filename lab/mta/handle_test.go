package mta

import "testing"

// /proc/net/tcp6 as a receiver's container shows it: a listener on port
// 25, two sessions established on it, one closing, and the receiver's own
// connection out to an identd (port 113, 0071).
func TestSMTPSessions(t *testing.T) {
	proc := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000480A8C0:0019 0000000000000000FFFF00000380A8C0:E4A2 01 00000000:00000000 00:00000000 00000000   101        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0000000000000000FFFF00000480A8C0:0019 0000000000000000FFFF00000380A8C0:E4A4 01 00000000:00000000 00:00000000 00000000   101        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0000000000000000FFFF00000480A8C0:0019 0000000000000000FFFF00000380A8C0:E4A6 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
   4: 0000000000000000FFFF00000480A8C0:A2C4 0000000000000000FFFF00000380A8C0:0071 01 00000000:00000000 00:00000000 00000000   101        0 4 1 0000000000000000 20 4 30 10 -1
`
	if n := smtpSessions(proc, 25); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	// An image listening on 2525 (09DD): none of those are its sessions.
	if n := smtpSessions(proc, 2525); n != 0 {
		t.Errorf("%d sessions on 2525, want 0", n)
	}
}
