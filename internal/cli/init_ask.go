package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/firstrun"
)

// prompter asks veil init's questions: one answer a line, the default in
// brackets (Enter takes it, - clears it), asked again until its check
// passes.
type prompter struct {
	in       *bufio.Reader
	out      io.Writer
	terminal bool // in is the terminal: passwords are read without echo
}

// line asks q and returns the answer check accepts.
func (p *prompter) line(q, def string, check func(string) error) (string, error) {
	for {
		if def != "" {
			fmt.Fprintf(p.out, "%s [%s]: ", q, def)
		} else {
			fmt.Fprintf(p.out, "%s: ", q)
		}
		s, err := p.in.ReadString('\n')
		if !p.terminal {
			fmt.Fprintln(p.out) // answers piped in are not echoed
		}
		if err != nil && s == "" {
			return "", fmt.Errorf("%s: no answer (stdin ended)", q)
		}
		a := strings.TrimSpace(s)
		switch a {
		case "":
			a = def
		case "-":
			a = ""
		}
		if check != nil {
			if err := check(a); err != nil {
				fmt.Fprintf(p.out, "  %v\n", err)
				continue
			}
		}
		return a, nil
	}
}

// password asks for a password: without echo and twice on a terminal.
func (p *prompter) password(q string, check func(string) error) (string, error) {
	if !p.terminal {
		return p.line(q, "", check)
	}
	fd := int(os.Stdin.Fd())
	for {
		fmt.Fprintf(p.out, "%s: ", q)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(p.out)
		if err != nil {
			return "", err
		}
		pw := string(b)
		if err := check(pw); err != nil {
			fmt.Fprintf(p.out, "  %v\n", err)
			continue
		}
		if pw == "" {
			return "", nil
		}
		fmt.Fprint(p.out, "the same again: ")
		b, err = term.ReadPassword(fd)
		fmt.Fprintln(p.out)
		if err != nil {
			return "", err
		}
		if string(b) != pw {
			fmt.Fprintln(p.out, "  the two differ; once more")
			continue
		}
		return pw, nil
	}
}

func yesNo(a string) error {
	switch strings.ToLower(a) {
	case "y", "yes", "n", "no", "":
		return nil
	}
	return fmt.Errorf("%q: allowed y or n", a)
}

func isYes(a string) bool { a = strings.ToLower(a); return a == "y" || a == "yes" }

// nameCheck checks an answer with the name rule of key.
func nameCheck(key string) func(string) error {
	return func(a string) error { return firstrun.Name(key, a) }
}

// interactive asks for every answer, flags giving the defaults.
func (s *initSession) interactive(ctx context.Context) error {
	o, p, f := s.o, s.ask, &s.file
	fmt.Fprintln(s.out, "veil init: set up this box. Enter takes the answer in [brackets], - clears it.")
	if err := s.checkOut(); err != nil {
		return err
	}
	cams, err := parseCameraFlags(o)
	if err = errors.Join(err, s.setModelsDir()); err != nil {
		return err
	}
	if f.Store, err = p.line("store name (site.store: the shop, e.g. shop-042)", o.store, nameCheck("site.store")); err != nil {
		return err
	}
	device := o.device
	if !o.deviceSet {
		device = defaultDevice()
	}
	if f.Device, err = p.line("device name (site.device: this box, unique across all stores)", device, nameCheck("site.device")); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\ncameras: a name for each, and its source: %s\n", firstrun.SourceKinds)
	for i := 0; ; i++ {
		var fc *flagCamera
		if i < len(cams) {
			fc = cams[i]
		}
		done, err := s.askCamera(ctx, i, fc)
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	if len(f.Cameras) == 0 {
		fmt.Fprintln(s.out, "no cameras: add them to cameras: in the file, or run veil init again")
	}

	fmt.Fprintln(s.out, "\nhead office")
	broker := func(a string) error {
		return firstrun.Field("mqtt.broker", func(c *config.Config) { c.MQTT.Broker = a })
	}
	if f.Broker, err = p.line("MQTT broker (mqtt.broker: tcp://host:1883 or ssl://host:8883; empty: counts stay on the box)", o.broker, broker); err != nil {
		return err
	}
	if f.Broker != "" {
		key := func(a string) error {
			return firstrun.Field("mqtt.head_office_key", func(c *config.Config) { c.MQTT.HeadOfficeKey = a })
		}
		if f.HeadOfficeKey, err = p.line("head office's key (mqtt.head_office_key, from veil-hq relay-key; empty: delivery ends at the broker)", o.hoKey, key); err != nil {
			return err
		}
	}

	fmt.Fprintln(s.out, "\nthe operator's live view")
	listen := func(a string) error {
		return firstrun.Field("http.listen", func(c *config.Config) { c.HTTP.Listen = a })
	}
	if f.Listen, err = p.line("address (http.listen; 0.0.0.0:8080 for the shop's network)", o.listen, listen); err != nil {
		return err
	}
	user := func(a string) error { return firstrun.Field("http.user", func(c *config.Config) { c.HTTP.User = a }) }
	if f.User, err = p.line("login name (http.user)", o.user, user); err != nil {
		return err
	}
	var pw string
	if o.passwordFile != "" {
		pw, err = s.readPassword()
	} else {
		pw, err = p.password(fmt.Sprintf("password (%d..%d characters, stored only as its bcrypt hash; empty: no live view for now)", minPassword, maxPassword), passwordProblem)
	}
	if err != nil {
		return err
	}
	if err := s.setPassword(pw); err != nil {
		return err
	}
	fmt.Fprintln(s.out)
	return s.finish()
}

// askCamera asks for camera i (fc: its flags, or nil), opens it, writes its
// snapshot and asks for its lines and opt-in zone. done: no more cameras.
func (s *initSession) askCamera(ctx context.Context, i int, fc *flagCamera) (done bool, err error) {
	p := s.ask
	key := fmt.Sprintf("cameras[%d]", i)
	var def flagCamera
	if fc != nil {
		def = *fc
	}
	name, err := p.line(fmt.Sprintf("camera %d name (empty: no more cameras)", i+1), def.name, func(a string) error {
		if a == "" {
			return nil
		}
		if slices.ContainsFunc(s.file.Cameras, func(c config.Camera) bool { return c.Name == a }) {
			return &config.FieldError{Key: key + ".name", Msg: fmt.Sprintf("%q is used by an earlier camera; allowed a name unique among cameras", a)}
		}
		return firstrun.Name(key+".name", a)
	})
	if err != nil || name == "" {
		return true, err
	}
	var cam *firstrun.Camera
	src, err := p.line(fmt.Sprintf("camera %s source", name), def.source, func(a string) error {
		if err := firstrun.Source(key+".source", a); err != nil {
			return err
		}
		c, err := s.probe(ctx, key, name, a)
		cam = c
		return err
	})
	if err != nil {
		return false, err
	}
	defer cam.Close()
	c := config.Camera{Name: name, Source: src, Loop: cam.File}
	snap, err := s.snapshot(ctx, cam, c)
	if err != nil {
		return false, err
	}

	fmt.Fprintf(s.out, "counting lines of %s: x1,y1,x2,y2 in its %dx%d frame (see the scale on the snapshot's edges); a crossing from the line's left to its right, looking from x1,y1 to x2,y2, counts \"in\"\n",
		name, cam.Size.X, cam.Size.Y)
	for j := 0; ; j++ {
		var dl flagLine
		if j < len(def.lines) {
			dl = def.lines[j]
		}
		lkey := fmt.Sprintf("%s.lines[%d]", key, j)
		lname, err := p.line(fmt.Sprintf("  line %d name (empty: no more lines)", j+1), dl.name, func(a string) error {
			if a == "" {
				return nil
			}
			if slices.ContainsFunc(c.Lines, func(l config.CountLine) bool { return l.Name == a }) {
				return &config.FieldError{Key: lkey + ".name", Msg: fmt.Sprintf("%q is used by an earlier line of this camera; allowed a unique name", a)}
			}
			return firstrun.Name(lkey+".name", a)
		})
		if err != nil {
			return false, err
		}
		if lname == "" {
			break
		}
		var cl config.CountLine
		if _, err := p.line(fmt.Sprintf("  line %s: x1,y1,x2,y2", lname), dl.coords, func(a string) (err error) {
			cl, err = firstrun.ParseLine(lkey+".line", lname, a, cam.Size)
			return err
		}); err != nil {
			return false, err
		}
		c.Lines = append(c.Lines, cl)
	}
	if _, err := p.line("  opt-in zone x0,y0,x1,y1 (a signage camera's spot in front of the consent sign; empty: none)", def.zone, func(a string) (err error) {
		c.OptinZone = nil
		if a != "" {
			c.OptinZone, err = firstrun.ParseArea(key+".optin_zone", a, cam.Size)
		}
		return err
	}); err != nil {
		return false, err
	}
	if len(c.Lines) > 0 || c.OptinZone != nil {
		if err := s.writeSnapshot(c, snap); err != nil { // now with the lines drawn
			return false, err
		}
	}
	s.file.Cameras = append(s.file.Cameras, c)
	return false, nil
}
