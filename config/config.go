// Package config defines veil's one typed configuration, its defaults, loading
// through viper (YAML file, VEIL_* environment, flags) and validation that
// names the key, the bad value and what is allowed.
//
// Values are taken, in rising order of precedence, from Default, the YAML file,
// VEIL_* environment variables and command-line flags that were set. Every key
// can come from any of these; docs/veil.example.yaml lists them all.
package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/veil-edge/veil/blur"
)

// Config is the whole of veil's configuration. Keys are the mapstructure tags,
// nested with dots (e.g. "detect.score_threshold"); the environment variable for a
// key is VEIL_ plus the key upper-cased with dots as underscores
// (VEIL_DETECT_SCORE_THRESHOLD).
type Config struct {
	Log      Log      `mapstructure:"log"`
	Models   Models   `mapstructure:"models"`
	Detect   Detect   `mapstructure:"detect"`
	Track    Track    `mapstructure:"track"`
	Redact   Redact   `mapstructure:"redact"`
	Output   Output   `mapstructure:"output"`
	Site     Site     `mapstructure:"site"`
	Footfall Footfall `mapstructure:"footfall"`
	MQTT     MQTT     `mapstructure:"mqtt"`
	Outbox   Outbox   `mapstructure:"outbox"`
	HTTP     HTTP     `mapstructure:"http"`
	Live     Live     `mapstructure:"live"`
	Consent  Consent  `mapstructure:"consent"`
	Update   Update   `mapstructure:"update"`
	HQ       HQ       `mapstructure:"hq"`
}

// HQ configures veil-hq, head office's server: it subscribes to every box's
// reports on the broker of the mqtt section (its broker, credentials, TLS
// files and topic prefix; not its client_id) and serves the dashboard. The
// box (veil run) ignores this section.
type HQ struct {
	Listen          string        `mapstructure:"listen"`           // the dashboard's host:port
	User            string        `mapstructure:"user"`             // the dashboard's login name
	PasswordHash    string        `mapstructure:"password_hash"`    // bcrypt hash of its password (veil passwd); veil-hq refuses to start without one
	TLSCert         string        `mapstructure:"tls_cert"`         // PEM certificate: serve HTTPS (with tls_key)
	TLSKey          string        `mapstructure:"tls_key"`          // PEM private key of tls_cert
	TrustedProxy    string        `mapstructure:"trusted_proxy"`    // IP address of a TLS-terminating reverse proxy; empty: none
	Store           string        `mapstructure:"store"`            // sqlite | postgres
	SQLitePath      string        `mapstructure:"sqlite_path"`      // the SQLite database file (store: sqlite)
	PostgresDSN     string        `mapstructure:"postgres_dsn"`     // PostgreSQL connection string (store: postgres); prefer VEIL_HQ_POSTGRES_DSN
	ClientID        string        `mapstructure:"client_id"`        // MQTT client id of the persistent session; distinct per veil-hq process
	Group           string        `mapstructure:"group"`            // shared-subscription group; "-": a plain subscription
	Batch           int           `mapstructure:"batch"`            // most reports stored in one transaction, 1..10000
	StaleAfter      time.Duration `mapstructure:"stale_after"`      // a device without a report for this long is marked stale, 1m..168h
	Boxes           string        `mapstructure:"boxes"`            // the box registry (JSON lines: device, store, key): only these boxes' reports, signed with their keys, are stored; empty: relay_boxes
	UnsignedDevices string        `mapstructure:"unsigned_devices"` // store/device names, comma-separated, whose unsigned reports are stored (marked unsigned) while their boxes are upgraded
	MaxRate         float64       `mapstructure:"max_rate"`         // most people a window may count per second on one line, 0.1..1000
	MaxSkew         time.Duration `mapstructure:"max_skew"`         // how far after head office's clock a window may end, 1s..24h
	RelayBoxes      string        `mapstructure:"relay_boxes"`      // the registry of boxes whose consent pages head office relays (JSON lines); empty: relay off
	RelayKeyFile    string        `mapstructure:"relay_key_file"`   // head office's Ed25519 key signing down-link messages and acknowledgements (created if missing)
	RelayLedger     string        `mapstructure:"relay_ledger"`     // head office's own consent ledger
}

// BoxRegistry is the box registry veil-hq uses: hq.boxes, or
// hq.relay_boxes when that is empty.
func (h HQ) BoxRegistry() (path, key string) {
	if h.Boxes != "" {
		return h.Boxes, "hq.boxes"
	}
	return h.RelayBoxes, "hq.relay_boxes"
}

// Unsigned returns hq.unsigned_devices as a list of "store/device".
func (h HQ) Unsigned() []string {
	var out []string
	for _, f := range strings.Split(h.UnsignedDevices, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Update configures the over-the-air update agent inside veil run: it checks
// head office's TUF repository for a newer release, installs it under Root
// (releases/<version>, the current and previous links, state.json), switches
// to it and rolls back if it does not prove healthy. It is off while
// MetadataURL is empty.
type Update struct {
	Root          string        `mapstructure:"root"`           // install root: releases/, current, previous, state.json
	MetadataURL   string        `mapstructure:"metadata_url"`   // base URL of the TUF repository's metadata (http or https); empty: the update agent is off
	TargetsURL    string        `mapstructure:"targets_url"`    // base URL of its targets; set together with MetadataURL
	TrustedRoot   string        `mapstructure:"trusted_root"`   // the TUF root metadata installed with the box, the start of trust
	Interval      time.Duration `mapstructure:"interval"`       // how often veil run checks for a release, 1s..168h
	HealthTimeout time.Duration `mapstructure:"health_timeout"` // how long a switched-in release has to prove healthy before it is rolled back, 10s..30m
}

// Consent configures the shoppers' opt-in (cameras with an optin_zone).
type Consent struct {
	Ledger      string        `mapstructure:"ledger"`       // the hash-chained consent ledger file
	KeyFile     string        `mapstructure:"key_file"`     // the box's Ed25519 key (created if missing) signing QR tokens and receipts
	MaxDuration time.Duration `mapstructure:"max_duration"` // longest a consent lasts, 1m..12h
	TokenTTL    time.Duration `mapstructure:"token_ttl"`    // how long a QR code is valid, 10s..10m
	Retention   time.Duration `mapstructure:"retention"`    // ledger entries of ended consents are purged after this, 24h..87600h
	PublicURL   string        `mapstructure:"public_url"`   // base URL in the QR codes; empty: the address the sign's page was opened with
	NoticeFile  string        `mapstructure:"notice_file"`  // notice JSON (versioned, en and zh-CN); empty: the built-in notice
	// RelayKey is head office's consent-relay Ed25519 public key, standard
	// base64 (44 characters). With it and mqtt.broker set, the box takes
	// grants and withdrawals given on head office's phone pages from the
	// MQTT down-link <prefix>/<store>/<device>/consent, signed with that key.
	RelayKey string `mapstructure:"relay_key"`
}

// Live configures how veil run schedules detection for its cameras, which
// are watched live: for latency, not look-ahead.
type Live struct {
	Every    int           `mapstructure:"detect_every"`    // detect the newest frame whenever the detector is free, at most every N frames, 1..30
	Deadline time.Duration `mapstructure:"detect_deadline"` // a live keyframe's detection deadline, 1ms..60s
}

// HTTP configures veil run's web server (health and metrics).
type HTTP struct {
	Listen       string `mapstructure:"listen"`        // host:port; empty: no web server
	User         string `mapstructure:"user"`          // the operator's login name
	PasswordHash string `mapstructure:"password_hash"` // bcrypt hash of the operator's password (veil passwd); empty: no login possible, live view off
	TLSCert      string `mapstructure:"tls_cert"`      // PEM certificate: serve HTTPS (with tls_key)
	TLSKey       string `mapstructure:"tls_key"`       // PEM private key of tls_cert
	TrustedProxy string `mapstructure:"trusted_proxy"` // IP address of a TLS-terminating reverse proxy; empty: none
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // text | json
}

// Models says where verified model files live.
type Models struct {
	// Dir is the directory `veil models fetch` fills. A relative path written
	// in a config file is resolved against that file's directory; a relative
	// path from the default, VEIL_MODELS_DIR or a flag is relative to the
	// working directory. Must not be empty.
	Dir string `mapstructure:"dir"`
}

// Detect configures face detection.
type Detect struct {
	Detector       string        `mapstructure:"detector"`        // blazeface | haar
	ScoreThreshold float64       `mapstructure:"score_threshold"` // 0.05..0.95
	NMSIoU         float64       `mapstructure:"nms_iou"`         // 0.1..0.9
	MinFace        int           `mapstructure:"min_face"`        // smallest face width searched for, px, 8..128
	Every          int           `mapstructure:"every"`           // run the full search every N frames, 1..30
	Deadline       time.Duration `mapstructure:"deadline"`        // per-frame detection deadline, 1ms..60s
	Threads        int           `mapstructure:"threads"`         // detector networks scanning a frame's windows in parallel, 1..64
	EdgePad        float64       `mapstructure:"edge_pad"`        // mirror this fraction of the shorter side past each edge so faces cut by the edge are found, 0..0.25
	FullEvery      time.Duration `mapstructure:"full_every"`      // scan the whole frame at least this often; between, only bands that changed or hold a face, 0s (always whole)..10s
	MaxFace        int           `mapstructure:"max_face"`        // widest face the camera can see, px; wider boxes need large_score; 0: a third of the frame's shorter side, 0..4096
	LargeScore     float64       `mapstructure:"large_score"`     // score a box wider than max_face needs to be redacted, 0.05..1
}

// Track configures the face tracker.
type Track struct {
	Hold          time.Duration `mapstructure:"hold"`           // keep a lost face redacted this long (and cover it this long before it was first seen), 0..30s
	TentativeHold time.Duration `mapstructure:"tentative_hold"` // hold for a face detected on one keyframe only (the shorter of this and hold applies), 0..30s
	Growth        float64       `mapstructure:"growth"`         // box growth per second unseen, as a fraction of its size, 0..10
	MatchIoU      float64       `mapstructure:"match_iou"`      // IoU to match a detection to a track, 0.05..0.9
	ConfirmScore  float64       `mapstructure:"confirm_score"`  // a detection this sure starts covering a face at once, 0..1
	ConfirmObs    int           `mapstructure:"confirm_obs"`    // weaker detections start covering after this many keyframes (0: never), 0..30
	Lookahead     int           `mapstructure:"lookahead"`      // frames held back so faces are covered before they are first detected, 0..250
}

// Redact configures how faces are redacted. The strength floor is enforced by
// blur.Options.Validate and cannot be lowered here.
type Redact struct {
	// Target is what is redacted: "faces" (detected and tracked faces),
	// "heads" (also the head of every person the counter tracks, for
	// faces turned away or too small to detect) or "bodies" (every tracked
	// person's whole figure, for shops that want nobody recognisable).
	Target       string  `mapstructure:"target"`
	Style        string  `mapstructure:"style"`         // gaussian | mosaic | fill
	Shape        string  `mapstructure:"shape"`         // box | ellipse
	Padding      float64 `mapstructure:"padding"`       // added on each side as a fraction of the face size, 0.2..1
	SigmaDivisor float64 `mapstructure:"sigma_divisor"` // gaussian sigma = face width / this, 1..6
	MosaicBlocks int     `mapstructure:"mosaic_blocks"` // blocks across the face, 2..6
	FillColor    string  `mapstructure:"fill_color"`    // #RRGGBB
}

// Output configures written video files.
type Output struct {
	Codec string `mapstructure:"codec"` // auto | mjpg | mp4v | xvid
}

// Site names this box in everything it reports.
type Site struct {
	Store  string `mapstructure:"store"`  // the shop, [A-Za-z0-9._-], 1..64 characters
	Device string `mapstructure:"device"` // this box, unique across all stores, [A-Za-z0-9._-], 1..64 characters
}

// Footfall configures people counting.
type Footfall struct {
	Window     time.Duration `mapstructure:"window"`      // count windows aligned to the clock, 1s..24h
	Band       float64       `mapstructure:"band"`        // half-width of the no-man's-land around a line, fraction of a person's height, 0.01..0.5
	MinHeight  float64       `mapstructure:"min_height"`  // smallest person counted, fraction of the frame height, 0.01..0.5
	JournalDir string        `mapstructure:"journal_dir"` // crossings not yet in the outbox, fsynced, so a crash loses none
	// Detector finds the people counted: "people", the person detector
	// (PersonModel) with a tracker, or "motion", moving blobs (MOG2), the
	// fallback when the model is missing.
	Detector string `mapstructure:"detector"`
	// PersonModel is the person detector's network: "centernet" (models
	// entry centernet-person) or "ssdlite" (ssdlite-person, Apache-2.0,
	// 300x300 whatever detect_width says).
	PersonModel string        `mapstructure:"person_model"`
	DetectEvery time.Duration `mapstructure:"detect_every"` // time between person detections (stream time), 0..2s; 0: every frame
	DetectWidth int           `mapstructure:"detect_width"` // person network input width in pixels, 128..1024 (rounded to a multiple of 32)
	PersonScore float64       `mapstructure:"person_score"` // minimum person detection score, 0.1..0.9
	// DetectShare is the share of the detection service's time the person
	// detector keeps while the face search wants it all (veil run), 0..0.5.
	DetectShare float64 `mapstructure:"detect_share"`
}

// Redaction targets.
const (
	TargetFaces  = "faces"
	TargetHeads  = "heads"
	TargetBodies = "bodies"
)

// Footfall detectors.
const (
	DetectPeople = "people"
	DetectMotion = "motion"
)

// Person models (footfall.person_model).
const (
	PersonCenterNet = "centernet"
	PersonSSDLite   = "ssdlite"
)

// MQTT configures the egress of footfall reports to head office.
type MQTT struct {
	Broker      string `mapstructure:"broker"`       // tcp://host:1883, ssl://host:8883 (or mqtt://, mqtts://); empty: no egress
	ClientID    string `mapstructure:"client_id"`    // fixed client id; empty: veil-<site.device>
	Username    string `mapstructure:"username"`     // optional
	Password    string `mapstructure:"password"`     // optional; prefer VEIL_MQTT_PASSWORD
	CAFile      string `mapstructure:"ca_file"`      // PEM CA bundle for ssl:// brokers; empty: system roots
	CertFile    string `mapstructure:"cert_file"`    // PEM client certificate (with key_file)
	KeyFile     string `mapstructure:"key_file"`     // PEM client key (with cert_file)
	TopicPrefix string `mapstructure:"topic_prefix"` // topics are <prefix>/<store>/<device>/footfall|status|ack
	// HeadOfficeKey is head office's Ed25519 public key, standard base64
	// (veil-hq relay-key prints it). With it, a count window leaves the
	// outbox only when head office's acknowledgement on
	// <prefix>/<store>/<device>/ack, signed with that key, says it is
	// stored; without it (and without consent.relay_key, the same key,
	// used in its place) delivery ends at the broker's acknowledgement.
	HeadOfficeKey string `mapstructure:"head_office_key"`
	// ResendAfter is how long a report the broker has acknowledged waits
	// for head office's acknowledgement before it is published again; each
	// further wait doubles, up to 30 minutes (or ResendAfter if longer).
	ResendAfter time.Duration `mapstructure:"resend_after"`
}

// Outbox configures the on-disk queue of closed count windows.
type Outbox struct {
	Dir        string `mapstructure:"dir"`         // directory owned by veil; windows wait here until head office acknowledges them
	MaxEntries int    `mapstructure:"max_entries"` // bound; beyond it the oldest windows are merged, never dropped, 10..1000000
}

// Default is the configuration used for every key that no file, environment
// variable or flag sets. It passes Validate. Load never modifies it.
var Default = Config{
	Log:    Log{Level: "info", Format: "text"},
	Models: Models{Dir: "models/files"},
	Detect: Detect{
		Detector:       "blazeface",
		ScoreThreshold: 0.2,
		NMSIoU:         0.3,
		MinFace:        12,
		Every:          4,
		Deadline:       2 * time.Second,
		Threads:        2,
		EdgePad:        0.05,
		FullEvery:      2 * time.Second,
		MaxFace:        0,
		LargeScore:     0.75,
	},
	Track:  Track{Hold: time.Second, TentativeHold: 300 * time.Millisecond, Growth: 0.1, MatchIoU: 0.2, ConfirmScore: 0.4, ConfirmObs: 3, Lookahead: 12},
	Redact: RedactFrom(blur.DefaultOptions),
	Output: Output{Codec: "auto"},
	Site:   Site{Store: "store", Device: "box"},
	Footfall: Footfall{Window: 15 * time.Minute, Band: 0.1, MinHeight: 0.06, JournalDir: "var/open-windows",
		Detector: DetectPeople, PersonModel: PersonCenterNet, DetectEvery: 100 * time.Millisecond, DetectWidth: 320, PersonScore: 0.25, DetectShare: 0.15},
	MQTT:    MQTT{TopicPrefix: "veil/v1", ResendAfter: time.Minute},
	Outbox:  Outbox{Dir: "var/outbox", MaxEntries: 10000},
	HTTP:    HTTP{Listen: "127.0.0.1:8080", User: "operator"},
	Live:    Live{Every: 1, Deadline: 500 * time.Millisecond},
	Consent: Consent{Ledger: "var/consent/ledger.jsonl", KeyFile: "var/consent/box.key", MaxDuration: 2 * time.Hour, TokenTTL: time.Minute, Retention: 90 * 24 * time.Hour},
	Update:  Update{Root: "/opt/veil", TrustedRoot: "/etc/veil/root.json", Interval: 6 * time.Hour, HealthTimeout: 3 * time.Minute},
	HQ: HQ{Listen: "127.0.0.1:8090", User: "admin", Store: "sqlite", SQLitePath: "var/hq/hq.db",
		ClientID: "veil-hq", Group: "veil-hq", Batch: 512, StaleAfter: 20 * time.Minute, MaxRate: 10, MaxSkew: 5 * time.Minute,
		RelayKeyFile: "var/hq/relay.key", RelayLedger: "var/hq/consent-ledger.jsonl"},
}

// RedactFrom returns the config form of blur options: the inverse of
// Redact.BlurOptions.
func RedactFrom(o blur.Options) Redact {
	return Redact{
		Target:       TargetFaces,
		Style:        string(o.Style),
		Shape:        string(o.Shape),
		Padding:      o.Padding,
		SigmaDivisor: o.SigmaDivisor,
		MosaicBlocks: o.MosaicBlocks,
		FillColor:    fmt.Sprintf("#%02x%02x%02x", o.FillColor.R, o.FillColor.G, o.FillColor.B),
	}
}
