package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default.Validate(); err != nil {
		t.Fatalf("Default.Validate: %v", err)
	}
}

func TestLoadNoFileIsDefault(t *testing.T) {
	clearEnv(t)
	got, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != Default {
		t.Errorf("Load(\"\") = %+v, want Default %+v", got, Default)
	}
}

// TestExampleIsDefault keeps docs/veil.example.yaml true: loading it gives
// Default, its models.dir resolved against docs/.
func TestExampleIsDefault(t *testing.T) {
	clearEnv(t)
	got, err := Load(examplePath, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default
	want.Models.Dir = filepath.Join(filepath.Dir(examplePath), Default.Models.Dir)
	if got != want {
		t.Errorf("example loads as\n%+v\nwant\n%+v", got, want)
	}
}

// TestExampleDocumentsEveryKey checks that the example sets every key and
// that the comment above it states what Validate allows.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	section := ""
	seen := map[string]bool{}
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		name, _, _ := strings.Cut(trimmed, ":")
		if !strings.HasPrefix(line, " ") {
			section = name
			continue
		}
		key := section + "." + name
		seen[key] = true
		var comment []string
		for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j-- {
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[j]), "#")))
		}
		slices.Reverse(comment)
		text := strings.Join(comment, " ")
		if want := "Allowed: " + Allowed(key); Allowed(key) == "" || !strings.Contains(text, want) {
			t.Errorf("%s: comment %q does not say %q", key, text, want)
		}
	}
	for _, k := range Keys() {
		if !seen[k] {
			t.Errorf("example does not set %s", k)
		}
	}
}

// badFiles maps each testdata/config/NAME.bad.yaml to substrings its error
// must contain: the key and what is allowed.
var badFiles = map[string][]string{
	"unknown-key":          {`unknown key "retention.days"`, "allowed sections log, models, detect, track, redact, output, site, footfall, mqtt, outbox, http, live, consent, update, hq"},
	"typo-key":             {`unknown key "detect.scor_threshold"`, `did you mean "detect.score_threshold"?`},
	"wrong-section":        {`unknown key "track.every"`, `did you mean "detect.every"?`},
	"bad-detector":         {`detect.detector: "yolo" is not supported; allowed blazeface, haar`},
	"bad-person-model":     {`footfall.person_model: "yolo" is not supported; allowed centernet, ssdlite`},
	"threshold-range":      {"detect.score_threshold: 1.5 is out of range; allowed 0.05..0.95"},
	"negative-duration":    {"track.hold: -2s is negative; allowed 0..30s"},
	"duration-no-unit":     {`detect.deadline: 2 has no unit; write it like "2s" or "2ms"; allowed 1ms..60s`},
	"bad-duration":         {`detect.deadline: "2 seconds" is not a duration`, "allowed 1ms..60s"},
	"sigma-divisor":        {"redact.sigma_divisor: 8 is weaker than the floor; allowed 1..6"},
	"mosaic-blocks":        {"redact.mosaic_blocks: 10 is weaker than the floor; allowed 2..6"},
	"padding":              {"redact.padding: 0.1 is weaker than the floor; allowed 0.2..1"},
	"bad-colour":           {`redact.fill_color: "red" is not a colour; allowed #RRGGBB`},
	"unquoted-colour":      {"redact.fill_color: has no value", "allowed #RRGGBB", `quote colours in YAML: "#404040"`},
	"wrong-type":           {`detect.min_face: "big" is not a whole number; allowed 8..128`},
	"fraction":             {"detect.every: 2.5 is not a whole number; allowed 1..30"},
	"bool-number":          {"detect.threads: true is not a whole number; allowed 1..64"},
	"list-value":           {"log.level: a list is not text; allowed debug, info, warn, error"},
	"section-scalar":       {`detect: "fast" is not a section; allowed a mapping of detector, score_threshold`},
	"value-mapping":        {"detect.score_threshold: a mapping is not a value; allowed 0.05..0.95"},
	"malformed":            {"not valid YAML", "line 3"},
	"top-level-list":       {"not valid YAML: the top level must be a mapping of sections (log, models, detect"},
	"bad-level":            {`log.level: "verbose" is not supported; allowed debug, info, warn, error`},
	"bad-format":           {`log.format: "xml" is not supported; allowed text, json`},
	"bad-codec":            {`output.codec: "h264" is not supported; allowed auto, mjpg, mp4v, xvid`},
	"empty-models-dir":     {`models.dir: "" is empty; allowed a directory path`},
	"threads-range":        {"detect.threads: 0 is out of range; allowed 1..64"},
	"nan":                  {"track.growth: NaN is not a finite number; allowed 0..10"},
	"short-lookahead":      {"track.lookahead: 4 frames cannot cover a face confirmed on its keyframe 3", "allowed 8..250"},
	"two-documents":        {"line 4: a second YAML document starts here; veil reads one document per file"},
	"bad-broker":           {`mqtt.broker: "http://hq:80" is not a broker URL; allowed empty (no egress) or a URL tcp://, ssl://, mqtt://, mqtts://host:port`},
	"bad-store":            {`site.store: "shop 42/#" is not a name; allowed 1..64 of A-Z a-z 0-9 . _ -`},
	"cert-without-key":     {"mqtt.key_file: mqtt.cert_file and mqtt.key_file go together; allowed both set or both empty"},
	"short-window":         {"footfall.window: 500ms is out of range; allowed 1s..24h"},
	"bad-proxy":            {`http.trusted_proxy: "proxy.lan" is not an IP address; allowed empty (none) or an IP address`},
	"tls-cert-only":        {"http.tls_key: http.tls_cert and http.tls_key go together; allowed both set or both empty"},
	"plain-password":       {"http.password_hash: is not a bcrypt hash (a password must never be written here); allowed empty (no login) or a bcrypt hash from veil passwd"},
	"update-interval":      {"update.interval: 336h0m0s is out of range; allowed 1s..168h"},
	"update-metadata-only": {"update.targets_url: update.metadata_url and update.targets_url go together; allowed both set (update agent on) or both empty (off)"},
	"update-bad-url":       {`update.metadata_url: "updates.example/veil/metadata" is not an absolute https:// URL (or http:// to a loopback address); allowed an https:// URL (http:// only to a loopback address), or empty`},
	"update-empty-root":    {`update.trusted_root: "" is empty; allowed a file path`},
	"hq-postgres-no-dsn":   {`hq.postgres_dsn: is empty but hq.store is "postgres"; allowed a PostgreSQL connection string`},
	"hq-bad-store":         {`hq.store: "mysql" is not supported; allowed sqlite, postgres`},
	"hq-bad-group":         {`hq.group: "a/b" is not a shared-subscription group; allowed a name without / + #`},
	"hq-bad-unsigned":      {`hq.unsigned_devices: "shop_042/box-7, box-8" is not a list of store/device; allowed empty (none) or store/device names separated by commas, e.g. shop_042/box-7, shop_042/box-8`},
	"hq-unsigned-list":     {`hq.unsigned_devices: a list is not text; allowed empty (none) or store/device names separated by commas`},
	"hq-max-rate":          {"hq.max_rate: 0 is out of range; allowed 0.1..1000"},
	"hq-max-skew":          {"hq.max_skew: 48h0m0s is out of range; allowed 1s..24h"},
	"bad-relay-key":        {`consent.relay_key: "aGVhZCBvZmZpY2U=" is not an Ed25519 public key; allowed empty or head office's Ed25519 public key in standard base64 (44 characters; veil-hq relay-key prints it)`},
}

func TestBadFiles(t *testing.T) {
	clearEnv(t)
	files, err := filepath.Glob("../testdata/config/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".bad.yaml")
		if _, ok := badFiles[name]; !ok {
			t.Errorf("%s has no expected error in badFiles", path)
		}
	}
	for name, wants := range badFiles {
		t.Run(name, func(t *testing.T) {
			path := "../testdata/config/" + name + ".bad.yaml"
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path, nil, nil)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", cfg)
			}
			if cfg != (Config{}) {
				t.Errorf("Load returned a non-zero Config with its error: %+v", cfg)
			}
			msg := err.Error()
			for _, want := range wants {
				if !strings.Contains(msg, want) {
					t.Errorf("error\n%s\ndoes not contain\n%s", msg, want)
				}
			}
			// One mistake, one error, prefixed with the file.
			if lines := strings.Split(msg, "\n"); !strings.HasPrefix(msg, "config "+path+": ") ||
				(name != "malformed" && len(lines) != 1) {
				t.Errorf("want one error prefixed %q, got\n%s", "config "+path+": ", msg)
			}
		})
	}
}

func TestEveryProblemReported(t *testing.T) {
	clearEnv(t)
	t.Setenv("VEIL_DETECT_THREADS", "100")
	path := writeFile(t, `
log: {level: loud}
detect: {detector: yolo, min_face: big, every: 0, deadline: 0s, colour: red}
track: {hold: 2}
redact: {sigma_divisor: 8, mosaic_blocks: 10, padding: 0.1, fill_color: "#12345"}
`)
	_, err := Load(path, nil, nil)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	wants := []string{
		`unknown key "detect.colour"; did you mean "redact.fill_color"?`,
		`log.level: "loud" is not supported`,
		`detect.detector: "yolo" is not supported`,
		`detect.min_face: "big" is not a whole number; allowed 8..128`,
		"detect.every: 0 is out of range",
		"detect.deadline: 0s is out of range; allowed 1ms..60s",
		"detect.threads: 100 is out of range; allowed 1..64 (set by VEIL_DETECT_THREADS)",
		"track.hold: 2 has no unit",
		"redact.padding: 0.1 is weaker than the floor",
		"redact.sigma_divisor: 8 is weaker than the floor",
		"redact.mosaic_blocks: 10 is weaker than the floor",
		`redact.fill_color: "#12345" is not a colour`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(wants) {
		t.Errorf("got %d errors, want %d:\n%v", len(lines), len(wants), err)
	}
	for i, want := range wants {
		if i < len(lines) && !strings.Contains(lines[i], want) {
			t.Errorf("error %d = %q, want it to contain %q", i, lines[i], want)
		}
		if i < len(lines) && !strings.HasPrefix(lines[i], "config "+path+": ") {
			t.Errorf("error %d = %q is not prefixed with the file", i, lines[i])
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("no *FieldError in %v", err)
	}
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.Suggestion != "redact.fill_color" {
		t.Errorf("UnknownKeyError = %+v", uk)
	}
}

func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path, nil, nil)
	if err == nil || err.Error() != "config "+path+": no such file or directory" {
		t.Errorf("err = %v", err)
	}
}

func TestEmptyFileAndSectionsAreDefault(t *testing.T) {
	clearEnv(t)
	for _, doc := range []string{"", "# nothing\n", "detect:\nredact:\n", "detect: {}\n", "%YAML 1.1\n---\ndetect: {}\n...\n"} {
		got, err := Load(writeFile(t, doc), nil, nil)
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if got != Default {
			t.Errorf("%q: got %+v", doc, got)
		}
	}
}

func TestFileValues(t *testing.T) {
	clearEnv(t)
	path := writeFile(t, `
Detect:                # keys are case-insensitive
  Detector: haar
  deadline: 45s
  min_face: 24.0       # a whole number written as a float is fine
track:
  hold: 0              # a bare 0 needs no unit
redact:
  fill_color: "#A0b0C0"
  padding: 1
output.codec: xvid     # dotted keys work at the top level
`)
	got, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default
	want.Models.Dir = Default.Models.Dir // not in the file: stays relative to the working directory
	want.Detect.Detector = "haar"
	want.Detect.Deadline = 45 * time.Second
	want.Detect.MinFace = 24
	want.Track.Hold = 0
	want.Redact.FillColor = "#A0b0C0"
	want.Redact.Padding = 1
	want.Output.Codec = "xvid"
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	o, err := got.Redact.BlurOptions()
	if err != nil || o.FillColor.R != 0xa0 || o.FillColor.G != 0xb0 || o.FillColor.B != 0xc0 || o.FillColor.A != 255 {
		t.Errorf("BlurOptions = %+v, %v", o, err)
	}
}

func TestModelsDir(t *testing.T) {
	clearEnv(t)
	path := writeFile(t, "models:\n  dir: ../shared/models\n")
	got, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(path), "../shared/models"); got.Models.Dir != want {
		t.Errorf("relative dir from file = %q, want %q", got.Models.Dir, want)
	}

	path = writeFile(t, "models:\n  dir: /var/lib/veil/models\n")
	if got, err = Load(path, nil, nil); err != nil || got.Models.Dir != "/var/lib/veil/models" {
		t.Errorf("absolute dir from file = %q, %v", got.Models.Dir, err)
	}

	t.Setenv("VEIL_MODELS_DIR", "env/models")
	path = writeFile(t, "models:\n  dir: file/models\n")
	if got, err = Load(path, nil, nil); err != nil || got.Models.Dir != "env/models" {
		t.Errorf("relative dir from env = %q, %v; want it relative to the working directory", got.Models.Dir, err)
	}
}

// envValues gives, for every key, an environment value other than the
// default and what it loads as. TestEnvEveryKey fails if a key is missing.
var envValues = map[string]struct {
	env  string
	want any
}{
	"log.level":              {"debug", "debug"},
	"log.format":             {"json", "json"},
	"models.dir":             {"/opt/models", "/opt/models"},
	"detect.detector":        {"haar", "haar"},
	"detect.score_threshold": {"0.7", 0.7},
	"detect.nms_iou":         {" 0.45 ", 0.45},
	"detect.min_face":        {"32", 32},
	"detect.every":           {"4", 4},
	"detect.deadline":        {"500ms", 500 * time.Millisecond},
	"detect.threads":         {"8", 8},
	"detect.edge_pad":        {"0.1", 0.1},
	"detect.full_every":      {"500ms", 500 * time.Millisecond},
	"detect.max_face":        {"150", 150},
	"detect.large_score":     {"0.9", 0.9},
	"track.hold":             {"2.5s", 2500 * time.Millisecond},
	"track.growth":           {"0", 0.0},
	"track.tentative_hold":   {"200ms", 200 * time.Millisecond},
	"track.lookahead":        {"20", 20},
	"track.match_iou":        {"0.3", 0.3},
	"track.confirm_score":    {"0.6", 0.6},
	"track.confirm_obs":      {"2", 2},
	"redact.style":           {"mosaic", "mosaic"},
	"redact.shape":           {"box", "box"},
	"redact.padding":         {"0.5", 0.5},
	"redact.sigma_divisor":   {"2.5", 2.5},
	"redact.mosaic_blocks":   {"3", 3},
	"redact.fill_color":      {"#000000", "#000000"},
	"output.codec":           {"mjpg", "mjpg"},
	"site.store":             {"shop-042", "shop-042"},
	"site.device":            {"cam_box.1", "cam_box.1"},
	"footfall.window":        {"1m", time.Minute},
	"footfall.band":          {"0.2", 0.2},
	"footfall.min_height":    {"0.1", 0.1},
	"footfall.journal_dir":   {"/var/lib/veil/open", "/var/lib/veil/open"},
	"footfall.detector":      {"motion", "motion"},
	"footfall.person_model":  {"ssdlite", "ssdlite"},
	"footfall.detect_every":  {"200ms", 200 * time.Millisecond},
	"footfall.detect_width":  {"416", 416},
	"footfall.person_score":  {"0.4", 0.4},
	"footfall.detect_share":  {"0.3", 0.3},
	"redact.target":          {"bodies", "bodies"},
	"mqtt.broker":            {"ssl://hq.example:8883", "ssl://hq.example:8883"},
	"mqtt.client_id":         {"veil-42", "veil-42"},
	"mqtt.username":          {"shop42", "shop42"},
	"mqtt.password":          {"s3cret word", "s3cret word"},
	"mqtt.ca_file":           {"/etc/veil/ca.pem", "/etc/veil/ca.pem"},
	"mqtt.cert_file":         {"/etc/veil/box.pem", "/etc/veil/box.pem"},
	"mqtt.key_file":          {"/etc/veil/box.key", "/etc/veil/box.key"},
	"mqtt.topic_prefix":      {"acme/veil/v1", "acme/veil/v1"},
	"outbox.dir":             {"/var/lib/veil/outbox", "/var/lib/veil/outbox"},
	"outbox.max_entries":     {"500", 500},
	"http.listen":            {":9090", ":9090"},
	"http.user":              {"manager", "manager"},
	"http.password_hash":     {"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
	"http.tls_cert":          {"/etc/veil/cert.pem", "/etc/veil/cert.pem"},
	"http.tls_key":           {"/etc/veil/key.pem", "/etc/veil/key.pem"},
	"http.trusted_proxy":     {"10.0.0.1", "10.0.0.1"},
	"live.detect_every":      {"3", 3},
	"consent.ledger":         {"/var/lib/veil/consent.jsonl", "/var/lib/veil/consent.jsonl"},
	"consent.key_file":       {"/var/lib/veil/box.key", "/var/lib/veil/box.key"},
	"consent.max_duration":   {"30m", 30 * time.Minute},
	"consent.token_ttl":      {"30s", 30 * time.Second},
	"consent.retention":      {"720h", 720 * time.Hour},
	"consent.public_url":     {"https://shop.example/", "https://shop.example/"},
	"consent.notice_file":    {"/etc/veil/notice.json", "/etc/veil/notice.json"},
	"consent.relay_key":      {"ERERERERERERERERERERERERERERERERERERERERERE=", "ERERERERERERERERERERERERERERERERERERERERERE="},
	"mqtt.head_office_key":   {"ERERERERERERERERERERERERERERERERERERERERERE=", "ERERERERERERERERERERERERERERERERERERERERERE="},
	"mqtt.resend_after":      {"20s", 20 * time.Second},
	"live.detect_deadline":   {"250ms", 250 * time.Millisecond},
	"update.root":            {"/srv/veil", "/srv/veil"},
	"update.metadata_url":    {"https://updates.example/veil/metadata", "https://updates.example/veil/metadata"},
	"update.targets_url":     {"http://127.0.0.1:8000/targets", "http://127.0.0.1:8000/targets"},
	"update.trusted_root":    {"/opt/veil/root.json", "/opt/veil/root.json"},
	"update.interval":        {"30m", 30 * time.Minute},
	"update.health_timeout":  {"90s", 90 * time.Second},
	"hq.listen":              {":9443", ":9443"},
	"hq.user":                {"head-office", "head-office"},
	"hq.password_hash":       {"$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"},
	"hq.tls_cert":            {"/etc/veil/hq.pem", "/etc/veil/hq.pem"},
	"hq.tls_key":             {"/etc/veil/hq-key.pem", "/etc/veil/hq-key.pem"},
	"hq.trusted_proxy":       {"10.0.0.2", "10.0.0.2"},
	"hq.store":               {"postgres", "postgres"},
	"hq.sqlite_path":         {"/var/lib/veil-hq/hq.db", "/var/lib/veil-hq/hq.db"},
	"hq.postgres_dsn":        {"postgres://hq@db.example/veil", "postgres://hq@db.example/veil"},
	"hq.client_id":           {"veil-hq-2", "veil-hq-2"},
	"hq.group":               {"-", "-"},
	"hq.batch":               {"100", 100},
	"hq.stale_after":         {"1h", time.Hour},
	"hq.boxes":               {"/etc/veil/boxes.jsonl", "/etc/veil/boxes.jsonl"},
	"hq.unsigned_devices":    {"shop_042/box-7, shop_042/box-8", "shop_042/box-7, shop_042/box-8"},
	"hq.max_rate":            {"2.5", 2.5},
	"hq.max_skew":            {"30s", 30 * time.Second},
	"hq.relay_boxes":         {"/etc/veil/boxes.jsonl", "/etc/veil/boxes.jsonl"},
	"hq.relay_key_file":      {"/var/lib/veil-hq/relay.key", "/var/lib/veil-hq/relay.key"},
	"hq.relay_ledger":        {"/var/lib/veil-hq/consent.jsonl", "/var/lib/veil-hq/consent.jsonl"},
}

// pairedKeys are set together or not at all.
var pairedKeys = map[string]string{
	"http.tls_cert":       "http.tls_key",
	"http.tls_key":        "http.tls_cert",
	"update.metadata_url": "update.targets_url",
	"update.targets_url":  "update.metadata_url",
	"hq.tls_cert":         "hq.tls_key",
	"hq.tls_key":          "hq.tls_cert",
	"hq.store":            "hq.postgres_dsn", // postgres needs a DSN
}

// TestEnvEveryKey sets each key through its environment variable alone, with
// and without a file that does not mention the key.
func TestEnvEveryKey(t *testing.T) {
	for _, key := range Keys() {
		ev, ok := envValues[key]
		if !ok {
			t.Errorf("envValues has no entry for %s", key)
			continue
		}
		for _, path := range []string{"", writeFile(t, "output:\n  codec: auto\n")} {
			t.Run(key+"/file="+filepath.Base(path), func(t *testing.T) {
				clearEnv(t)
				t.Setenv(EnvVar(key), ev.env)
				partner, paired := pairedKeys[key]
				if paired { // a key valid only with its partner
					t.Setenv(EnvVar(partner), envValues[partner].env)
				}
				got, err := Load(path, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if v := got.value(keyByName[key]).Interface(); !reflect.DeepEqual(v, ev.want) {
					t.Errorf("%s=%q loads %s as %#v, want %#v", EnvVar(key), ev.env, key, v, ev.want)
				}
				// Nothing else changes.
				got2 := got
				reflect.ValueOf(&got2).Elem().FieldByIndex(keyByName[key].index).Set(Default.value(keyByName[key]))
				if paired {
					reflect.ValueOf(&got2).Elem().FieldByIndex(keyByName[partner].index).Set(Default.value(keyByName[partner]))
				}
				if got2 != Default {
					t.Errorf("other keys changed: %+v", got)
				}
			})
		}
	}
}

func TestEnvOverridesFile(t *testing.T) {
	clearEnv(t)
	t.Setenv("VEIL_DETECT_SCORE_THRESHOLD", "0.8")
	t.Setenv("VEIL_LOG_LEVEL", "") // empty: ignored
	path := writeFile(t, "detect:\n  score_threshold: 0.6\nlog:\n  level: warn\n")
	got, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Detect.ScoreThreshold != 0.8 || got.Log.Level != "warn" {
		t.Errorf("score_threshold %g, level %q; want 0.8 from env, warn from the file", got.Detect.ScoreThreshold, got.Log.Level)
	}
}

func TestEnvErrorsNameTheVariable(t *testing.T) {
	clearEnv(t)
	t.Setenv("VEIL_DETECT_MIN_FACE", "sixteen")
	t.Setenv("VEIL_TRACK_HOLD", "1")
	_, err := Load("", nil, nil)
	for _, want := range []string{
		`config: detect.min_face: "sixteen" is not a whole number; allowed 8..128 (set by VEIL_DETECT_MIN_FACE)`,
		`config: track.hold: "1" is not a duration; write it like "500ms" or "2s"; allowed 0..30s (set by VEIL_TRACK_HOLD)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	}
}

// testFlags returns flags like a command's, bound by flagKeys.
func testFlags(t *testing.T, args ...string) (*pflag.FlagSet, map[string]string) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("log-level", "", "")
	fs.Int("every", 0, "")
	fs.String("models-dir", "", "")
	fs.Float64("score", 0, "")
	fs.Duration("deadline", 0, "")
	fs.String("unbound", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs, map[string]string{
		"log-level":  "log.level",
		"every":      "detect.every",
		"models-dir": "models.dir",
		"score":      "detect.score_threshold",
		"deadline":   "detect.deadline",
	}
}

func TestFlagOverride(t *testing.T) {
	clearEnv(t)
	fs, keys := testFlags(t, "--log-level=debug", "--every", "6", "--score=0.65", "--deadline=250ms", "--unbound=x")
	got, err := Load("", fs, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := Default
	want.Log.Level = "debug"
	want.Detect.Every = 6
	want.Detect.ScoreThreshold = 0.65
	want.Detect.Deadline = 250 * time.Millisecond
	if got != want { // models-dir was not set: its empty default must not apply
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	fs, keys = testFlags(t, "--every=0")
	_, err = Load("", fs, keys)
	if want := "config: detect.every: 0 is out of range; allowed 1..30 (set by --every)"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// TestPrecedence: flag > env > file > default, key by key.
func TestPrecedence(t *testing.T) {
	clearEnv(t)
	path := writeFile(t, `
detect:
  every: 3
  threads: 3
  min_face: 20
log:
  level: warn
`)
	t.Setenv("VEIL_DETECT_EVERY", "4")
	t.Setenv("VEIL_DETECT_THREADS", "4")
	t.Setenv("VEIL_LOG_LEVEL", "error")
	fs, keys := testFlags(t, "--every=5")
	got, err := Load(path, fs, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"detect.every (flag)", got.Detect.Every, 5},
		{"detect.threads (env)", got.Detect.Threads, 4},
		{"log.level (env, flag bound but not set)", got.Log.Level, "error"},
		{"detect.min_face (file)", got.Detect.MinFace, 20},
		{"detect.nms_iou (default)", got.Detect.NMSIoU, Default.Detect.NMSIoU},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
}

func TestBindFlagsMistakes(t *testing.T) {
	fs, _ := testFlags(t)
	for keys, want := range map[*map[string]string]string{
		{"every": "detect.evry"}:  `flag --every is bound to "detect.evry", which is not a config key`,
		{"evry": "detect.every"}:  "flag --evry (for detect.every) is not defined",
		{"every": "detect.every"}: "",
	} {
		err := BindFlags(viper.New(), fs, *keys)
		if (err == nil) != (want == "") || err != nil && err.Error() != want {
			t.Errorf("BindFlags(%v) = %v, want %q", *keys, err, want)
		}
		if _, err := Load("", fs, *keys); (err == nil) != (want == "") {
			t.Errorf("Load with %v: %v", *keys, err)
		}
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	clearEnv(t)
	c := Default
	c.Models.Dir = "/srv/veil models/\"quoted\" #not a comment"
	c.Detect.Deadline = 1500 * time.Millisecond
	c.Detect.ScoreThreshold = 0.123456789
	c.Redact.Style = "fill"
	c.Redact.FillColor = "#FFFFFF"
	c.Log.Level = "Off" // not a plain scalar: YAML 1.1 reads it as false
	path := writeFile(t, string(c.YAML()))
	got, err := Load(path, nil, nil)
	if want := `config ` + path + `: log.level: "Off" is not supported`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v\nwant %s\n%s", err, want, c.YAML())
	}
	c.Log.Level = "warn"
	c.Models.Dir = "relative/dir"
	path = writeFile(t, string(c.YAML()))
	got, err = Load(path, nil, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.YAML())
	}
	c.Models.Dir = filepath.Join(filepath.Dir(path), "relative/dir")
	if got != c {
		t.Errorf("round trip:\n%s\ngot  %+v\nwant %+v", c.YAML(), got, c)
	}
}

func TestSummary(t *testing.T) {
	s := Default.Summary()
	for _, want := range []string{"detect blazeface", "score >= 0.2", "redact gaussian", "ellipse", "models models/files"} {
		if !strings.Contains(s, want) || strings.Contains(s, "\n") {
			t.Errorf("Summary() = %q, want one line containing %q", s, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	for name, want := range map[string]string{
		"detect.scor_threshold": "detect.score_threshold",
		"detetc.every":          "detect.every",
		"detection.every":       "detect.every",
		"every":                 "detect.every",
		"detect.hold":           "track.hold",
		"log.levle":             "log.level",
		"redact.mosaic_block":   "redact.mosaic_blocks",
		"redact.fill_colour":    "redact.fill_color",
		"redact.color":          "redact.fill_color",
		"detect.threshold":      "detect.score_threshold",
		"redcat":                "redact",
		"foo":                   "",
		"detect.iou":            "", // nms_iou or match_iou: no guess
		"retention.days":        "",
	} {
		if got := suggest(name); got != want {
			t.Errorf("suggest(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestBlurLimitsInStep checks that the redact limits used to word type errors
// agree with blur.Options.Validate, which enforces them.
func TestBlurLimitsInStep(t *testing.T) {
	for _, k := range keys {
		l := limits[k.name]
		if !l.blur {
			continue
		}
		set := func(v any) error {
			c := Default
			f := reflect.ValueOf(&c).Elem().FieldByIndex(k.index)
			f.Set(reflect.ValueOf(v).Convert(f.Type()))
			_, err := c.Redact.BlurOptions()
			if err != nil && !strings.HasPrefix(err.Error(), k.name+": ") {
				t.Errorf("%s: error %q does not start with the key", k.name, err)
			}
			return err
		}
		switch {
		case l.enum != nil:
			for _, v := range l.enum {
				if err := set(v); err != nil {
					t.Errorf("%s = %q rejected: %v", k.name, v, err)
				}
			}
			if set("other") == nil {
				t.Errorf("%s = other accepted", k.name)
			}
		default:
			step := 1e-9
			if k.typ.Kind() == reflect.Int {
				step = 1
			}
			for v, ok := range map[float64]bool{l.lo: true, l.hi: true, l.lo - step: false, l.hi + step: false} {
				if err := set(v); (err == nil) != ok {
					t.Errorf("%s = %g: err %v, want ok=%t", k.name, v, err, ok)
				}
			}
		}
	}
}

func TestValidateEveryKeyHasLimit(t *testing.T) {
	for _, k := range Keys() {
		if Allowed(k) == "" {
			t.Errorf("%s has no limit", k)
		}
	}
	if len(limits) != len(keys) {
		t.Errorf("%d limits for %d keys", len(limits), len(keys))
	}
}

// TestPasswordNeverEchoed: a password written where its hash belongs is
// refused without repeating it in the error (errors end up in logs).
func TestPasswordNeverEchoed(t *testing.T) {
	_, err := Load("../testdata/config/plain-password.bad.yaml", nil, nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v; want a refusal that does not repeat the password", err)
	}
}

// TestUpdateURLs: update.metadata_url and update.targets_url take empty or an
// absolute https URL with a host, or http to a loopback address.
func TestUpdateURLs(t *testing.T) {
	for s, ok := range map[string]bool{
		"":                                      true,
		"https://updates.example/veil/metadata": true,
		"https://updates.example:8443":          true,
		"http://127.0.0.1:8000/metadata/":       true,
		"http://[::1]:8000/":                    true,
		"http://localhost:8000/":                true,
		"http://updates.example/metadata":       false, // plain http beyond loopback
		"HTTPS://updates.example/":              true,
		"updates.example/veil/metadata":         false,
		"/veil/metadata":                        false,
		"ftp://updates.example/":                false,
		"file:///srv/tuf/metadata":              false,
		"https://":                              false,
		"https:///metadata":                     false,
		"https://:8443/":                        false,
		"https:updates.example":                 false,
		"https://updates.example/a b":           false,
		"https://updates.example/%zz":           false,
	} {
		for _, key := range []string{"update.metadata_url", "update.targets_url"} {
			c := Default
			c.Update.MetadataURL, c.Update.TargetsURL = "https://partner.example/", "https://partner.example/"
			reflect.ValueOf(&c).Elem().FieldByIndex(keyByName[key].index).SetString(s)
			if s == "" {
				c.Update.MetadataURL, c.Update.TargetsURL = "", ""
			}
			err := c.Validate()
			if (err == nil) != ok {
				t.Errorf("%s = %q: err %v, want ok=%t", key, s, err, ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), key+": ") {
				t.Errorf("%s = %q: error %q does not name the key", key, s, err)
			}
		}
	}
}
