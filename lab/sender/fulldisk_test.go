package sender

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A disk that fills up while sendmail writes makes it fail loudly (exit
// 74, EX_IOERR, with the reason) and leaves nothing half-queued: no file in
// msg/ and none in tmp/. The full disk is a file-size limit on the sendmail
// process, so the write fails as it would on a full filesystem.
func TestSendmailFullDisk(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := OpenQueue(dir); err != nil {
		t.Fatal(err)
	}
	body := "Subject: big\n\n" + strings.Repeat("x", 64*1024) + "\n"
	cmd := exec.Command(self, asSendmail, dir, "-f", "a@example.com", "b@example.com")
	cmd.Env = append(os.Environ(), "SMTPLAB_TEST_FSIZE=4096")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitIOErr {
		t.Fatalf("sendmail on a full disk: %v, output %q; want exit %d", err, out, ExitIOErr)
	}
	if !strings.Contains(string(out), "queue") {
		t.Errorf("the error does not say what failed: %q", out)
	}
	for _, sub := range []string{"msg", "tmp"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		if len(entries) != 0 {
			t.Errorf("%d files left in %s/ after a failed injection", len(entries), sub)
		}
	}
	// The same message on a disk with room is queued.
	cmd = exec.Command(self, asSendmail, dir, "-f", "a@example.com", "b@example.com")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail with room: %v %q", err, out)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "msg")); len(entries) != 1 {
		t.Errorf("%d queued, want 1", len(entries))
	}
}
