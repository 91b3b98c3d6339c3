package scenario

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
)

// ImplImage is a receiver from any local image: the user's own mail
// server, with the lab's DNS, DNSBL zones, IDENT, line, workload and
// report around it. The lab knows nothing of its internals: it starts the
// image as the scenario says, points its resolver at the lab's DNS, and
// reads its evidence (the Maildir the scenario names).
const ImplImage = "image"

// Image is how to run a receiver from a local image (receiver.image). The
// lab never pulls it: build it (docker build -t NAME .) or load it (docker
// load) first.
type Image struct {
	Name string `yaml:"name" json:"name"` // a local image, e.g. myorg/my-postfix:latest
	// Port is its SMTP port in the container (25 when 0): the lab's
	// sender delivers there.
	Port int               `yaml:"port" json:"port,omitempty"`
	Env  map[string]string `yaml:"env" json:"env,omitempty"`
	// Files are placed in the container before it starts.
	Files []ImageFile `yaml:"files" json:"files,omitempty"`
	Cmd   []string    `yaml:"cmd" json:"cmd,omitempty"` // the image's own when empty
	// ReadyLog is a regular expression its output matches once it is up;
	// when empty, it is up when its SMTP port takes connections (a
	// sender's: its submission port, or Port).
	ReadyLog string `yaml:"ready_log" json:"ready_log,omitempty"`
	// Sendmail and Submission are how the lab injects the workload into
	// an image that plays the sender (sender.image), exactly one of them:
	// the path of a sendmail-compatible command in it, run as
	// "sendmail -f FROM RCPT" with the message on stdin, or its SMTP
	// submission port, one session per message from inside the
	// container. The lab's injection loop runs in the container (the lab
	// adds its static binary as /lab); the image needs sh. A receiver's
	// image has neither.
	Sendmail   string `yaml:"sendmail" json:"sendmail,omitempty"`
	Submission int    `yaml:"submission" json:"submission,omitempty"`
}

// ImageFile is one file placed in the image's container: its path there,
// and its content written inline or read From a file beside the scenario.
type ImageFile struct {
	Path    string `yaml:"path" json:"path"`
	Content string `yaml:"content" json:"content,omitempty"`
	From    string `yaml:"from" json:"from,omitempty"`
}

// SMTPPort is the image's SMTP port.
func (im Image) SMTPPort() int {
	if im.Port == 0 {
		return 25
	}
	return im.Port
}

// problems checks what every image needs, at key (receiver.image or
// sender.image); false when it names no image.
func (im *Image) problems(key, impl string, add func(path, format string, args ...any)) bool {
	if im == nil || im.Name == "" {
		add(key+".name", "%s needs the image to run: %s.name (a local image; build or load it first)", impl, key)
		return false
	}
	if im.Port < 0 || im.Port > 65535 {
		add(key+".port", "must be a TCP port (1-65535), got %d", im.Port)
	}
	if im.ReadyLog != "" {
		if _, err := regexp.Compile(im.ReadyLog); err != nil {
			add(key+".ready_log", "not a regular expression: %v", err)
		}
	}
	for i, f := range im.Files {
		p := fmt.Sprintf("%s.files[%d]", key, i)
		if !path.IsAbs(f.Path) {
			add(p+".path", "must be an absolute path in the container, got %q", f.Path)
		}
		if (f.Content == "") == (f.From == "") {
			add(p, "give exactly one of content (the file inline) and from (a file beside the scenario)")
		}
	}
	return true
}

// imageProblems checks receiver.image and sender.image for impl image,
// and that no other impl carries one.
func (s Scenario) imageProblems(add func(path, format string, args ...any)) {
	s.senderImageProblems(add)
	r := s.Receiver
	if r.Impl != ImplImage {
		if r.Image != nil {
			add("receiver.image", "is for receiver.impl image, not %q", implOf(r.Impl))
		}
		return
	}
	im := r.Image
	if !im.problems("receiver.image", "receiver.impl image", add) {
		return
	}
	if im.Sendmail != "" || im.Submission != 0 {
		add("receiver.image", "sendmail and submission say how to inject into a sender's image (sender.image)")
	}
	if !r.Relay() && r.Evidence != EvidenceMbox && !path.IsAbs(r.Maildir) {
		add("receiver.maildir", "the image's evidence is the Maildir it delivers to: an absolute path in its container, got %q", r.Maildir)
	}
	if len(r.Rules) > 0 {
		add("receiver.rules", "only receiver.impl go has extension rules; an image delivers as it is configured")
	}
	if r.Filter.Mode != "" {
		add("receiver.filter.mode", "only receiver.impl go has filter modes")
	}
	for i, bl := range s.DNS.Blacklists {
		if bl.Policy == "mark" || bl.TXT || bl.Message != "" {
			add(fmt.Sprintf("dns.blacklists[%d]", i), "policy mark, txt and message are the Go receiver's; an image answers listed clients as it is configured")
		}
	}
	if sd := s.Sender.Impl; sd != ImplGo && sd != "" && im.SMTPPort() != 25 {
		add("receiver.image.port", "a real sender (sender.impl %s) delivers to port 25; port %d needs the Go sender", sd, im.SMTPPort())
	}
}

// senderImageProblems checks sender.image: the image, and how the lab
// injects into it.
func (s Scenario) senderImageProblems(add func(path, format string, args ...any)) {
	sd := s.Sender
	if sd.Impl != ImplImage {
		if sd.Image != nil {
			add("sender.image", "is for sender.impl image, not %q", implOf(sd.Impl))
		}
		return
	}
	im := sd.Image
	if !im.problems("sender.image", "sender.impl image", add) {
		return
	}
	switch {
	case (im.Sendmail == "") == (im.Submission == 0):
		add("sender.image", "give exactly one way to inject the workload: sendmail (the path of a sendmail-compatible command in the image) or submission (its SMTP submission port)")
	case im.Sendmail != "" && !path.IsAbs(im.Sendmail):
		add("sender.image.sendmail", "must be an absolute path in the container, got %q", im.Sendmail)
	case im.Submission < 0 || im.Submission > 65535:
		add("sender.image.submission", "must be a TCP port (1-65535), got %d", im.Submission)
	}
	if sd.Link.Enabled {
		add("sender.link", "the modelled SMTP link wraps the Go sender's own connections; an image's are its own")
	}
}

func implOf(impl string) string {
	if impl == "" {
		return ImplGo
	}
	return impl
}

// readImageFiles reads each from file of receiver.image, relative to the
// scenario file's folder, into its content.
func (s *Scenario) readImageFiles(file string) error {
	if s.Receiver.Impl == ImplImage && s.Receiver.Image != nil {
		if err := s.Receiver.Image.readFiles(file, "receiver.image"); err != nil {
			return err
		}
	}
	if s.Sender.Impl == ImplImage && s.Sender.Image != nil {
		return s.Sender.Image.readFiles(file, "sender.image")
	}
	return nil
}

// readFiles reads each from file of im beside the scenario file.
func (im *Image) readFiles(file, key string) error {
	for i := range im.Files {
		f := &im.Files[i]
		if f.From == "" {
			continue
		}
		p := f.From
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%s.files[%d].from: %w", key, i, err)
		}
		f.Content, f.From = string(b), ""
	}
	return nil
}
