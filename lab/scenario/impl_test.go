package scenario

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// receiver.impl and sender.impl: what can play each role, and the
// settings only the Go models honour, refused with file:line.
func TestImplValidation(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown receiver", "name: x\nreceiver:\n  impl: qmail\n", `x.yaml:3: receiver.impl: must be go, courier, postfix, exim, image (any local image, described by receiver.image) or external (a server outside Docker, receiver.external), got "qmail"`},
		{"image without a name", "receiver:\n  impl: image\n  maildir: /home/u/Maildir\n", "x.yaml:2: receiver.image.name: receiver.impl image needs the image to run"},
		{"image for another impl", "receiver:\n  impl: courier\n  image: {name: a/b}\n", `x.yaml:3: receiver.image: is for receiver.impl image, not "courier"`},
		{"image port", "receiver:\n  impl: image\n  image:\n    name: a/b\n    port: 70000\n", "x.yaml:5: receiver.image.port: must be a TCP port (1-65535), got 70000"},
		{"image file both", "receiver:\n  impl: image\n  image:\n    name: a/b\n    files:\n      - {path: /etc/x, content: a, from: b}\n", "x.yaml:6: receiver.image.files[0]: give exactly one of content"},
		{"image file relative", "receiver:\n  impl: image\n  image:\n    name: a/b\n    files:\n      - {path: etc/x, content: a}\n", `receiver.image.files[0].path: must be an absolute path in the container, got "etc/x"`},
		{"image ready_log", "receiver:\n  impl: image\n  image: {name: a/b, ready_log: \"(\"}\n", "x.yaml:3: receiver.image.ready_log: not a regular expression"},
		{"image port with a real sender", "receiver:\n  impl: image\n  image: {name: a/b, port: 2525}\nsender: {impl: courier}\n", "receiver.image.port: a real sender (sender.impl courier) delivers to port 25"},
		{"image file missing", "receiver:\n  impl: image\n  image:\n    name: a/b\n    files:\n      - {path: /etc/x, from: no-such-file.cf}\n", "receiver.image.files[0].from: open "},
		{"unknown sender", "sender:\n  impl: qmail\n", `x.yaml:2: sender.impl: must be go, courier, postfix, exim or image (any local image, described by sender.image), got "qmail"`},
		{"rules with courier", "receiver:\n  impl: courier\n  rules:\n    - {file: -foo-default, maildirs: [/m]}\n", "x.yaml:4: receiver.rules: only receiver.impl go has extension rules"},
		{"filter with postfix", "receiver:\n  impl: postfix\n  filter: {mode: delay, delay: 1s}\n", "x.yaml:3: receiver.filter.mode: only receiver.impl go has filter modes"},
		{"mark with courier", "receiver: {impl: courier}\ndns:\n  blacklists:\n    - {zone: bl.example, policy: mark}\n", "x.yaml:4: dns.blacklists[0]: policy mark, txt and message are the Go receiver's"},
		{"maildir at the root", "receiver:\n  impl: courier\n  maildir: /Maildir\n", "x.yaml:3: receiver.maildir: a real courier delivers into the account's home"},
		{"evidence unknown", "receiver:\n  impl: image\n  image: {name: a/b}\n  evidence: mh\n", `x.yaml:4: receiver.evidence: must be maildir (the receiver's own Maildir), mbox (an image's mbox, receiver.mbox) or relay`},
		{"relay with the lab's own MTA", "receiver:\n  impl: postfix\n  evidence: relay\n", "x.yaml:3: receiver.evidence: relay is for a server the lab does not configure (receiver.impl image or external); the lab reads its own postfix directly"},
		{"external without an address", "receiver:\n  impl: external\n", "x.yaml:2: receiver.external: receiver.impl external needs receiver.external.address"},
		{"external on loopback", "receiver:\n  impl: external\n  external: {address: \"127.0.0.1:2525\", final: \"127.0.0.1:2626\"}\n", "x.yaml:3: receiver.external.address: 127.0.0.1 is the container's own loopback, not the machine running Docker: have the server listen on the Docker bridge (or all addresses) and give host.docker.internal:2525"},
		{"external bad address", "receiver:\n  impl: external\n  external: {address: \"mx.example.org\", final: \"127.0.0.1:2626\"}\n", `x.yaml:3: receiver.external.address: must be host:port (port 1-65535), got "mx.example.org"`},
		{"external final by name", "receiver:\n  impl: external\n  external: {address: \"mx.example.org:25\", final: \"lab.example.org:2626\"}\n", `x.yaml:3: receiver.external.final: the host must be an IP address of the machine running Docker (127.0.0.1, or 0.0.0.0 for all), got "lab.example.org"`},
		{"external with a maildir", "receiver:\n  impl: external\n  evidence: maildir\n  external: {address: \"mx.example.org:25\", final: \"127.0.0.1:2626\"}\n", "x.yaml:3: receiver.evidence: a server outside Docker has no Maildir the lab can read: its evidence is relay"},
		{"external with a real sender", "receiver:\n  impl: external\n  external: {address: \"mx.example.org:25\", final: \"127.0.0.1:2626\"}\nsender: {impl: postfix}\n", "x.yaml:4: sender.impl: a server outside Docker is reached by the Go sender"},
		{"external killed", "receiver:\n  impl: external\n  external: {address: \"mx.example.org:25\", final: \"127.0.0.1:2626\"}\nfaults:\n  - {type: kill, role: receiver, after_delivered: 10}\n", "x.yaml:5: faults[0].role: the lab cannot kill, pause or cut off a server outside Docker"},
		{"external for another impl", "receiver:\n  external: {address: \"mx.example.org:25\"}\n", `x.yaml:2: receiver.external: is for receiver.impl external, not "go"`},
		{"sender image without a way in", "sender:\n  impl: image\n  image: {name: a/b}\n", "x.yaml:3: sender.image: give exactly one way to inject the workload: sendmail"},
		{"sender image with both ways in", "sender:\n  impl: image\n  image: {name: a/b, sendmail: /usr/sbin/sendmail, submission: 587}\n", "x.yaml:3: sender.image: give exactly one way"},
		{"sender image sendmail relative", "sender:\n  impl: image\n  image: {name: a/b, sendmail: sendmail}\n", `x.yaml:3: sender.image.sendmail: must be an absolute path in the container, got "sendmail"`},
		{"sender image without a name", "sender:\n  impl: image\n", "x.yaml:2: sender.image.name: sender.impl image needs the image to run"},
		{"sender image for another impl", "sender:\n  image: {name: a/b}\n", `x.yaml:2: sender.image: is for sender.impl image, not "go"`},
		{"sender image with a link", "sender:\n  impl: image\n  image: {name: a/b, submission: 587}\n  link: {enabled: true}\n", "x.yaml:4: sender.link: the modelled SMTP link wraps the Go sender's own connections"},
		{"receiver image with a way in", "receiver:\n  impl: image\n  maildir: /home/u/Maildir\n  image: {name: a/b, submission: 587}\n", "x.yaml:4: receiver.image: sendmail and submission say how to inject into a sender's image"},
		{"mbox with the lab's own MTA", "receiver:\n  impl: postfix\n  evidence: mbox\n", "x.yaml:3: receiver.evidence: mbox is for an image (receiver.impl image); the lab's own postfix delivers to a Maildir"},
		{"mbox without a path", "receiver:\n  impl: image\n  image: {name: a/b}\n  evidence: mbox\n", `x.yaml:2: receiver.mbox: the image's evidence is the mbox it delivers to: an absolute path in its container, got ""`},
		{"mbox path without mbox evidence", "receiver:\n  impl: image\n  image: {name: a/b}\n  mbox: /var/mail/u\n", "x.yaml:4: receiver.mbox: is read only with receiver.evidence mbox"},
		{"go maildir outside its volume", "receiver:\n  maildir: /home/recipient/Maildir\n", `x.yaml:2: receiver.maildir: the lab's receiver delivers only under /var/mail (its one writable folder for mail), got "/home/recipient/Maildir"`},
		{"go maildir escaping its volume", "receiver:\n  maildir: /var/mail/../etc/Maildir\n", `x.yaml:2: receiver.maildir: the lab's receiver delivers only under /var/mail`},
		{"go maildir beside its volume", "receiver:\n  maildir: /var/mailx/Maildir\n", `x.yaml:2: receiver.maildir: the lab's receiver delivers only under /var/mail`},
		{"go rule maildir outside its volume", "receiver:\n  rules:\n    - {file: -foo-default, maildirs: [/var/mail/foo/Maildir, /srv/m]}\n", `x.yaml:3: receiver.rules[0].maildirs[1]: the lab's receiver delivers only under /var/mail`},
		{"compare without a real MTA", "compare_model: true\n", "x.yaml:1: compare_model: compares a real MTA with the Go model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestImplDefaultsAndModel(t *testing.T) {
	sc, err := Parse("x.yaml", []byte("name: real\ncompare_model: true\nreceiver: {impl: postfix}\nsender: {impl: courier}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.MTAs(); !slices.Equal(got, []string{"postfix", "courier"}) {
		t.Errorf("MTAs %v", got)
	}
	m := sc.Model()
	if m.Name != "real-model" || m.Receiver.Impl != ImplGo || m.Sender.Impl != ImplGo || m.CompareModel || m.Validate() != nil {
		t.Errorf("model %+v: %v", m, m.Validate())
	}
	ext, err := Parse("x.yaml", []byte("receiver:\n  impl: external\n  external: {address: \"host.docker.internal:2525\", final: \"127.0.0.1:2626\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !ext.Receiver.Relay() || len(ext.MTAs()) != 0 {
		t.Errorf("external: relay %v, MTAs %v; want relay evidence and nothing to build", ext.Receiver.Relay(), ext.MTAs())
	}
	img, err := Parse("x.yaml", []byte("receiver:\n  impl: image\n  image: {name: a/b}\n  evidence: relay\n"))
	if err != nil || !img.Receiver.Relay() {
		t.Errorf("an image relaying: %v", err)
	}
	if d := Default(); d.Receiver.Impl != ImplGo || d.Sender.Impl != ImplGo || len(d.MTAs()) != 0 {
		t.Errorf("defaults %q %q", d.Receiver.Impl, d.Sender.Impl)
	}
}

// An image's files given by path are read beside the scenario file, into
// the scenario itself (result.json records what the image was given), and
// an image is no MTA the lab builds.
func TestImageFilesFromBeside(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte("myhostname = mx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	y := "receiver:\n  impl: image\n  maildir: /home/u/Maildir\n  image:\n    name: myorg/mx:1\n    files:\n      - {path: /etc/postfix/main.cf, from: main.cf}\n      - {path: /etc/mailname, content: mx.example}\n"
	sc, err := Parse(filepath.Join(dir, "s.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	im := sc.Receiver.Image
	if im.Files[0].Content != "myhostname = mx\n" || im.Files[0].From != "" || im.Files[1].Content != "mx.example" || im.SMTPPort() != 25 {
		t.Errorf("image %+v", im)
	}
	if m := sc.MTAs(); len(m) != 0 {
		t.Errorf("MTAs to build %v, want none", m)
	}
}
