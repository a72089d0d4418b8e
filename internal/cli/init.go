package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/durable"
	"github.com/veil-edge/veil/internal/firstrun"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/web"
)

// Limits of veil init's operator password (bcrypt reads at most 72 bytes).
const (
	minPassword = 8
	maxPassword = 72
)

// configGroup is the group that may read the config veil init writes as
// root: veil.service runs as the veil user.
const configGroup = "veil"

func newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "First-run setup: ask for the shop, cameras, counting lines and login, and write the config file",
		Long: `Write a valid config file for this box without reading the whole of
docs/veil.example.yaml: the store and device names, each camera with its
counting lines (and an opt-in zone for a signage camera), head office's
broker and key, and the operator's login for the live view. Every other key
keeps its default (veil config show FILE prints them all).

Each camera is opened as veil run opens it: its size and frame rate are
shown, and one frame is taken through the face detector and the redactor and
saved as a JPEG snapshot, so you can check the camera's view and choose line
coordinates (the snapshot has a pixel scale on its edges, and the counting
lines drawn). A snapshot is never written unredacted: if the face detector
cannot load, the frame is redacted whole, and veil init says so.

A counting line x1,y1,x2,y2 is in frame pixels: a person crossing it from
its left to its right (as seen on screen, looking from x1,y1 to x2,y2)
counts "in", the other way "out".

The password is stored only as its bcrypt hash (http.password_hash). The
file is written atomically, mode 0640 (group veil when run as root), and
never over an existing one without --force. It is then checked as
'veil config check' does.

Two modes:
  on a terminal   veil init asks for each answer, the default in brackets
                  (Enter takes it, - clears it); a wrong answer is explained
                  and asked again. Flags given become the defaults.
  for scripts     with --yes, or when stdin is not a terminal, nothing is
                  asked: answers come from flags, and every problem is
                  reported at once, naming the key and what is allowed.
                  --interactive asks even without a terminal (answers one a
                  line on stdin).`,
		Example: `  # on the box, asked step by step
  sudo veil init

  # from a script
  printf '%s\n' "$PASSWORD" | sudo veil init --yes --store shop-042 --device box-1 \
      --camera door=rtsp://user:pass@10.0.0.5/stream1 --line door:entrance:350,150,350,450 \
      --camera sign=rtsp://10.0.0.6/stream1 --optin-zone sign:220,180,420,460 \
      --broker ssl://hq.example.com:8883 --head-office-key "$(cat hq.pub)" \
      --password-stdin
  sudo systemctl start veil

  # try it on the sample video, into a scratch directory
  veil init --yes --store demo --device laptop --camera sample=/usr/share/doc/opencv-doc/examples/data/vtest.avi \
      --line sample:entrance:350,150,350,450 --out /tmp/veil/veil.yaml --models-dir models/files`,
		Args: cobra.NoArgs,
		RunE: runInit,
	}
	f := cmd.Flags()
	f.String("store", "", "the shop (site.store): 1..64 of A-Z a-z 0-9 . _ -")
	f.String("device", "", "this box, unique across all stores (site.device); default: the host name if it is a valid name")
	f.StringArray("camera", nil, "a camera NAME=SOURCE (repeat for each): SOURCE is "+firstrun.SourceKinds)
	f.StringArray("line", nil, "a counting line CAMERA:NAME:x1,y1,x2,y2 in frame pixels (repeat for each)")
	f.StringArray("optin-zone", nil, "a signage camera's opt-in zone CAMERA:x0,y0,x1,y1 in frame pixels (one per camera)")
	f.String("broker", "", "head office's MQTT broker (mqtt.broker): tcp://host:1883 or ssl://host:8883; empty: counts stay on the box")
	f.String("head-office-key", "", "head office's public key (mqtt.head_office_key), as 'veil-hq relay-key' prints it")
	f.String("user", config.Default.HTTP.User, "the operator's login name (http.user)")
	f.String("password-file", "", "read the operator's password from the first line of this file")
	f.Bool("password-stdin", false, "read the operator's password from the first line of stdin")
	f.String("listen", config.Default.HTTP.Listen, "address of the operator page (http.listen); 0.0.0.0:8080 reaches it from the shop's network")
	f.StringP("out", "o", "/etc/veil/veil.yaml", "the config file to write (its directory is made if missing)")
	f.String("snapshot-dir", "", "where the cameras' redacted snapshots go (default: the directory of --out)")
	f.String("models-dir", "", "verified model files (models.dir) for the snapshots' face detector, written to the file as an absolute path (default: "+installedModelsDir+" on a box installed from the package, else "+config.Default.Models.Dir+", not written)")
	f.Bool("force", false, "overwrite --out if it exists")
	f.BoolP("yes", "y", false, "ask nothing: every answer from flags (the default when stdin is not a terminal)")
	f.Bool("interactive", false, "ask even when stdin is not a terminal (answers piped in, one a line)")
	f.Duration("probe-timeout", 30*time.Second, "how long a camera may take to open and send its first frame")
	return cmd
}

// initFlags are veil init's flags, as given.
type initFlags struct {
	store, device                 string
	cameras, lines, zones         []string
	broker, hoKey, user, listen   string
	passwordFile                  string
	passwordStdin                 bool
	out, snapshotDir, modelsDir   string
	force, yes, interactive       bool
	probeTimeout                  time.Duration
	deviceSet, userSet, listenSet bool
	storeSet, brokerSet, hoKeySet bool
}

func readInitFlags(cmd *cobra.Command) initFlags {
	f := cmd.Flags()
	var o initFlags
	o.store, _ = f.GetString("store")
	o.device, _ = f.GetString("device")
	o.cameras, _ = f.GetStringArray("camera")
	o.lines, _ = f.GetStringArray("line")
	o.zones, _ = f.GetStringArray("optin-zone")
	o.broker, _ = f.GetString("broker")
	o.hoKey, _ = f.GetString("head-office-key")
	o.user, _ = f.GetString("user")
	o.listen, _ = f.GetString("listen")
	o.passwordFile, _ = f.GetString("password-file")
	o.passwordStdin, _ = f.GetBool("password-stdin")
	o.out, _ = f.GetString("out")
	o.snapshotDir, _ = f.GetString("snapshot-dir")
	o.modelsDir, _ = f.GetString("models-dir")
	if o.modelsDir == "" {
		o.modelsDir = installedModels(installedModelsDir)
	}
	o.force, _ = f.GetBool("force")
	o.yes, _ = f.GetBool("yes")
	o.interactive, _ = f.GetBool("interactive")
	o.probeTimeout, _ = f.GetDuration("probe-timeout")
	o.storeSet, o.deviceSet = f.Changed("store"), f.Changed("device")
	o.userSet, o.listenSet = f.Changed("user"), f.Changed("listen")
	o.brokerSet, o.hoKeySet = f.Changed("broker"), f.Changed("head-office-key")
	return o
}

// initSession is one run of veil init.
type initSession struct {
	cmd *cobra.Command
	o   initFlags
	out io.Writer
	log *slog.Logger
	ask *prompter // nil: flags mode

	file    firstrun.File
	snaps   map[string]string // camera name: snapshot path
	gid     int               // group of the files written; -1: the process's
	snapDir string

	detTried bool
	newDet   pipeline.NewDetector
	detErr   error
	snapOpts pipeline.Options
}

func runInit(cmd *cobra.Command, _ []string) error {
	o := readInitFlags(cmd)
	level, _ := cmd.Flags().GetString("log-level")
	if level == "" {
		level = "warn"
	}
	s := &initSession{cmd: cmd, o: o, out: cmd.OutOrStdout(), log: newLogger(level, "text"), snaps: map[string]string{}, gid: -1}
	in := cmd.InOrStdin()
	onTerminal := in == os.Stdin && term.IsTerminal(int(os.Stdin.Fd()))
	if o.interactive || (!o.yes && onTerminal) {
		if o.passwordStdin {
			return errors.New("--password-stdin: stdin carries the answers when veil init asks; use --password-file, or --yes to ask nothing")
		}
		s.ask = &prompter{in: bufio.NewReader(in), out: s.out, terminal: onTerminal}
	}
	if o.probeTimeout <= 0 {
		return fmt.Errorf("--probe-timeout %s: allowed a duration above 0 (e.g. 30s)", o.probeTimeout)
	}
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup(configGroup); err == nil {
			s.gid, _ = strconv.Atoi(g.Gid)
		}
	}
	if s.ask != nil {
		return s.interactive(cmd.Context())
	}
	return s.flagsMode(cmd.Context())
}

// checkOut refuses an existing --out without --force (interactive: asks).
func (s *initSession) checkOut() error {
	if s.o.out == "" {
		return errors.New("--out: empty; allowed the path of the config file to write (e.g. /etc/veil/veil.yaml)")
	}
	st, err := os.Stat(s.o.out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", s.o.out, err)
	case st.IsDir():
		return fmt.Errorf("--out %s: is a directory; allowed the path of a file", s.o.out)
	case s.o.force:
		return nil
	}
	if s.ask != nil {
		a, err := s.ask.line(fmt.Sprintf("%s exists: overwrite it? (y/N)", s.o.out), "n", yesNo)
		if err != nil {
			return err
		}
		if isYes(a) {
			return nil
		}
	}
	return fmt.Errorf("--out %s: exists; veil init does not overwrite a config without --force (check it with: veil config check %s)", s.o.out, s.o.out)
}

// defaultDevice is the host name, when it is a valid device name.
func defaultDevice() string {
	h, err := os.Hostname()
	if err != nil || firstrun.Name("site.device", h) != nil {
		return ""
	}
	return h
}

// flagCamera is a --camera, --line or --optin-zone flag, parsed.
type flagCamera struct {
	name, source string
	lines        []flagLine
	zone         string // x0,y0,x1,y1; "" none
}

type flagLine struct{ name, coords string }

// parseCameraFlags reads --camera, --line and --optin-zone, checking their
// form and names (not frame coordinates: those need the camera's size).
func parseCameraFlags(o initFlags) ([]*flagCamera, error) {
	var errs []error
	var cams []*flagCamera
	byName := map[string]*flagCamera{}
	for i, v := range o.cameras {
		name, src, ok := strings.Cut(v, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--camera %q: want NAME=SOURCE (e.g. door=rtsp://10.0.0.5/stream1); SOURCE is %s", v, firstrun.SourceKinds))
			continue
		}
		key := fmt.Sprintf("cameras[%d]", i)
		err := errors.Join(firstrun.Name(key+".name", name), firstrun.Source(key+".source", src))
		if byName[name] != nil {
			err = errors.Join(err, &config.FieldError{Key: key + ".name", Msg: fmt.Sprintf("%q is used by an earlier camera; allowed a name unique among cameras", name)})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--camera %s: %w", v, err))
			continue
		}
		c := &flagCamera{name: name, source: src}
		cams = append(cams, c)
		byName[name] = c
	}
	names := func() string {
		var n []string
		for _, c := range cams {
			n = append(n, c.name)
		}
		if len(n) == 0 {
			return "none: give the camera with --camera NAME=SOURCE"
		}
		return strings.Join(n, ", ")
	}
	for _, v := range o.lines {
		cam, rest, ok1 := strings.Cut(v, ":")
		name, coords, ok2 := strings.Cut(rest, ":")
		switch c := byName[cam]; {
		case !ok1 || !ok2:
			errs = append(errs, fmt.Errorf("--line %q: want CAMERA:NAME:x1,y1,x2,y2 (e.g. door:entrance:350,150,350,450)", v))
		case c == nil:
			errs = append(errs, fmt.Errorf("--line %s: camera %q is not a --camera; allowed %s", v, cam, names()))
		default:
			key := fmt.Sprintf("cameras[%d].lines[%d].name", slices.Index(cams, c), len(c.lines))
			if err := firstrun.Name(key, name); err != nil {
				errs = append(errs, fmt.Errorf("--line %s: %w", v, err))
				continue
			}
			if slices.ContainsFunc(c.lines, func(l flagLine) bool { return l.name == name }) {
				errs = append(errs, fmt.Errorf("--line %s: %s: %q is used by an earlier line of camera %s; allowed a unique name", v, key, name, cam))
				continue
			}
			c.lines = append(c.lines, flagLine{name, coords})
		}
	}
	for _, v := range o.zones {
		cam, coords, ok := strings.Cut(v, ":")
		switch c := byName[cam]; {
		case !ok:
			errs = append(errs, fmt.Errorf("--optin-zone %q: want CAMERA:x0,y0,x1,y1 (e.g. sign:220,180,420,460)", v))
		case c == nil:
			errs = append(errs, fmt.Errorf("--optin-zone %s: camera %q is not a --camera; allowed %s", v, cam, names()))
		case c.zone != "":
			errs = append(errs, fmt.Errorf("--optin-zone %s: camera %s has an opt-in zone already; allowed one per camera", v, cam))
		default:
			c.zone = coords
		}
	}
	return cams, errors.Join(errs...)
}

// checkScalars checks the answers that are not cameras, each by its
// config key's rule; the flag names the answer in errors.
func (s *initSession) checkScalars() error {
	f := &s.file
	var errs []error
	add := func(flag string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	add("--store", firstrun.Name("site.store", f.Store))
	add("--device", firstrun.Name("site.device", f.Device))
	add("--broker", firstrun.Field("mqtt.broker", func(c *config.Config) { c.MQTT.Broker = f.Broker }))
	add("--head-office-key", firstrun.Field("mqtt.head_office_key", func(c *config.Config) { c.MQTT.HeadOfficeKey = f.HeadOfficeKey }))
	add("--user", firstrun.Field("http.user", func(c *config.Config) { c.HTTP.User = f.User }))
	add("--listen", firstrun.Field("http.listen", func(c *config.Config) { c.HTTP.Listen = f.Listen }))
	return errors.Join(errs...)
}

// flagsMode takes every answer from flags and reports every problem at once.
func (s *initSession) flagsMode(ctx context.Context) error {
	o := s.o
	if err := s.checkOut(); err != nil {
		return err
	}
	device := o.device
	if !o.deviceSet {
		device = defaultDevice()
	}
	s.file = firstrun.File{Store: o.store, Device: device, Broker: o.broker, HeadOfficeKey: o.hoKey, User: o.user, Listen: o.listen}
	cams, cerr := parseCameraFlags(o)
	if err := errors.Join(s.checkScalars(), cerr, s.setModelsDir()); err != nil {
		return err
	}
	pw, err := s.readPassword()
	if err != nil {
		return err
	}
	if err := s.setPassword(pw); err != nil {
		return err
	}
	if len(cams) == 0 {
		fmt.Fprintln(s.out, "no --camera given: the config has no cameras (add them to cameras: in the file, or run veil init again)")
	}
	var errs []error
	for i, fc := range cams {
		key := fmt.Sprintf("cameras[%d]", i)
		cam, err := s.probe(ctx, key, fc.name, fc.source)
		if err != nil {
			errs = append(errs, fmt.Errorf("--camera %s=%s: %w", fc.name, media.Display(fc.source), err))
			continue
		}
		c := config.Camera{Name: fc.name, Source: fc.source, Loop: cam.File}
		for j, l := range fc.lines {
			cl, err := firstrun.ParseLine(fmt.Sprintf("%s.lines[%d].line", key, j), l.name, l.coords, cam.Size)
			if err != nil {
				errs = append(errs, fmt.Errorf("--line %s:%s:%s: %w", fc.name, l.name, l.coords, err))
				continue
			}
			c.Lines = append(c.Lines, cl)
		}
		if fc.zone != "" {
			z, err := firstrun.ParseArea(key+".optin_zone", fc.zone, cam.Size)
			if err != nil {
				errs = append(errs, fmt.Errorf("--optin-zone %s:%s: %w", fc.name, fc.zone, err))
			}
			c.OptinZone = z
		}
		_, err = s.snapshot(ctx, cam, c)
		cam.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.file.Cameras = append(s.file.Cameras, c)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.finish()
}

// installedModelsDir is where the package (and the update agent) keeps the
// running release's verified models.
const installedModelsDir = "/opt/veil/current/models"

// installedModels is dir when it exists (a box installed from the package,
// where veil run must load the release's models), else "".
func installedModels(dir string) string {
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return ""
}

// setModelsDir checks --models-dir and makes it absolute for the file
// (a relative models.dir in a file is relative to the file's directory).
func (s *initSession) setModelsDir() error {
	if s.o.modelsDir == "" {
		return nil
	}
	abs, err := filepath.Abs(s.o.modelsDir)
	if err != nil {
		return fmt.Errorf("--models-dir %s: %w", s.o.modelsDir, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return fmt.Errorf("--models-dir %s: models.dir: not a directory; allowed the directory 'veil models fetch' fills", s.o.modelsDir)
	}
	s.file.ModelsDir = abs
	return nil
}

// readPassword reads --password-file or --password-stdin ("" if neither).
func (s *initSession) readPassword() (string, error) {
	o := s.o
	switch {
	case o.passwordFile != "" && o.passwordStdin:
		return "", errors.New("--password-file and --password-stdin: give one of them")
	case o.passwordFile != "":
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(pw, "\r"), nil
	case o.passwordStdin:
		line, err := bufio.NewReader(s.cmd.InOrStdin()).ReadString('\n')
		if err != nil && line == "" {
			return "", errors.New("--password-stdin: no password on stdin")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	return "", nil
}

// passwordProblem checks an operator password; "" is no password (no live
// view until one is set).
func passwordProblem(pw string) error {
	if pw != "" && (len(pw) < minPassword || len(pw) > maxPassword) {
		return &config.FieldError{Key: "http.password_hash", Msg: fmt.Sprintf("a password of %d bytes; allowed a password of %d..%d bytes (it is stored only as its bcrypt hash)", len(pw), minPassword, maxPassword)}
	}
	return nil
}

// setPassword hashes pw into the file ("": none, with a word on what that
// means).
func (s *initSession) setPassword(pw string) error {
	if err := passwordProblem(pw); err != nil {
		return fmt.Errorf("operator password: %w", err)
	}
	if pw == "" {
		fmt.Fprintln(s.out, "no operator password: the live view stays off until http.password_hash is set (veil passwd makes the hash)")
		return nil
	}
	h, err := web.HashPassword(pw)
	if err != nil {
		return err
	}
	s.file.PasswordHash = h
	return nil
}

// loadDetector loads the snapshots' face detector once. Without one every
// snapshot is redacted whole.
func (s *initSession) loadDetector() {
	if s.detTried {
		return
	}
	s.detTried = true
	cfg := config.Default
	if s.o.modelsDir != "" {
		cfg.Models.Dir = s.o.modelsDir
	}
	cfg.Detect.Deadline = max(cfg.Detect.Deadline, firstrun.SnapshotDeadline)
	s.snapOpts = firstrun.SnapshotOptions(cfg)
	s.newDet, s.detErr = app.DetectorFactory(cfg.Detect, cfg.Models.Dir, s.log)
	if s.detErr != nil {
		s.newDet = nil
		fmt.Fprintf(s.out, "face detector not loaded (%v): every snapshot is redacted whole (veil models fetch, or --models-dir, then run veil init again to see the view)\n", s.detErr)
	}
}

// probe opens a camera and prints what it is.
func (s *initSession) probe(ctx context.Context, key, name, source string) (*firstrun.Camera, error) {
	fmt.Fprintf(s.out, "camera %s: opening %s ...\n", name, media.Display(source))
	cam, err := firstrun.Open(ctx, source, s.o.probeTimeout)
	if err != nil {
		hint := "check the address, the camera's user and password, and that it is on"
		if !strings.Contains(source, "://") && !strings.HasPrefix(source, "/dev/video") {
			hint = "check the path, and that it is a video OpenCV reads"
			if errors.Is(err, io.EOF) {
				err = errors.New("has no video frames")
			}
		}
		return nil, &config.FieldError{Key: key + ".source", Msg: fmt.Sprintf("%s: %v; allowed %s that opens (%s)",
			media.Display(source), err, firstrun.SourceKinds, hint)}
	}
	fmt.Fprintf(s.out, "camera %s: %s\n", name, cam.Describe())
	return cam, nil
}

// snapshotPath is where camera name's snapshot goes.
func (s *initSession) snapshotPath(name string) string {
	dir := s.o.snapshotDir
	if dir == "" {
		dir = filepath.Dir(s.o.out)
	}
	return filepath.Join(dir, "veil-snapshot-"+name+".jpg")
}

// snapshot takes the camera's redacted snapshot and writes it with c's
// lines and zone drawn.
func (s *initSession) snapshot(ctx context.Context, cam *firstrun.Camera, c config.Camera) (firstrun.Snapshot, error) {
	s.loadDetector()
	red, err := app.CameraRedactor(config.Default.Redact, c)
	if err != nil {
		return firstrun.Snapshot{}, err
	}
	defer red.Close()
	snap, err := cam.Snapshot(ctx, s.newDet, red, s.snapOpts)
	if err != nil {
		return snap, fmt.Errorf("camera %s: %w", c.Name, err)
	}
	return snap, s.writeSnapshot(c, snap)
}

// writeSnapshot writes a redacted snapshot with c's lines and zone drawn.
func (s *initSession) writeSnapshot(c config.Camera, snap firstrun.Snapshot) error {
	img, err := firstrun.Overlay(snap.JPEG, c.Lines, c.OptinZone)
	if err != nil {
		return fmt.Errorf("camera %s: snapshot: %w", c.Name, err)
	}
	path := s.snapshotPath(c.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("--snapshot-dir: %w", err)
	}
	if err := durable.WriteFileMode(filepath.Dir(path), filepath.Base(path), ".tmp-", img, 0o640, s.gid); err != nil {
		return fmt.Errorf("camera %s: writing its snapshot: %w", c.Name, err)
	}
	s.snaps[c.Name] = path
	switch {
	case snap.Whole && s.detErr != nil:
		fmt.Fprintf(s.out, "camera %s: snapshot %s is redacted WHOLE: no face detector\n", c.Name, path)
	case snap.Whole:
		fmt.Fprintf(s.out, "camera %s: snapshot %s is redacted WHOLE (%s)\n", c.Name, path, snap.Reason)
	default:
		fmt.Fprintf(s.out, "camera %s: snapshot %s (face areas redacted: %d)\n", c.Name, path, snap.Faces)
	}
	return nil
}

// finish writes the file, checks it as veil config check does and says
// what to do next.
func (s *initSession) finish() error {
	header := fmt.Sprintf("# veil configuration, written by `veil init` on %s.\n"+
		"# Only the keys asked for are here; every other key keeps its default\n"+
		"# (docs/veil.example.yaml lists them all; `veil config show FILE` prints\n"+
		"# what veil will use). Check changes with `veil config check FILE`.\n\n",
		time.Now().Format("2006-01-02"))
	data, err := s.file.YAML(header)
	if err != nil {
		return err
	}
	dir, name := filepath.Split(s.o.out)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", s.o.out, err)
	}
	if err := durable.WriteFileMode(dir, name, ".tmp-", data, 0o640, s.gid); err != nil {
		return fmt.Errorf("--out %s: %w", s.o.out, err)
	}
	group := ""
	if s.gid >= 0 {
		group = ", group " + configGroup
	}
	fmt.Fprintf(s.out, "wrote %s (mode 0640%s)\n", s.o.out, group)
	if err := checkConfigFile(s.cmd, s.o.out); err != nil {
		return fmt.Errorf("%s was written but does not pass veil config check: %w", s.o.out, err)
	}
	s.nextSteps()
	return nil
}

func (s *initSession) nextSteps() {
	w := s.out
	fmt.Fprintln(w, "\nnext:")
	if len(s.snaps) > 0 {
		fmt.Fprintln(w, "  look at each snapshot (faces redacted; counting lines and opt-in zones drawn, pixel scale on the edges):")
		for _, c := range s.file.Cameras {
			fmt.Fprintf(w, "    %s: %s\n", c.Name, s.snaps[c.Name])
		}
	}
	fmt.Fprintln(w, "  sudo systemctl start veil            # or: veil run -c "+s.o.out)
	fmt.Fprintln(w, "  journalctl -u veil -f                # its log")
	if s.file.PasswordHash != "" {
		fmt.Fprintf(w, "  the live view: http://%s/ as %s  # http.listen; served on loopback only unless you change it\n", s.file.Listen, s.file.User)
	} else {
		fmt.Fprintln(w, "  veil passwd                          # a password hash for http.password_hash: the live view is off without one")
	}
	if s.file.Broker == "" {
		fmt.Fprintln(w, "  counts stay on the box until mqtt.broker is set")
	}
}
