package config

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// YAML returns c as a YAML config file, every key in Config's order. Loading
// it gives c back (a relative models.dir then resolves against the directory
// the file is written to).
func (c Config) YAML() []byte {
	var b strings.Builder
	section := ""
	for _, k := range keys {
		sec, leaf, _ := strings.Cut(k.name, ".")
		if sec != section {
			if section != "" {
				b.WriteByte('\n')
			}
			section = sec
			fmt.Fprintf(&b, "%s:\n", sec)
		}
		fmt.Fprintf(&b, "  %s: %s\n", leaf, yamlScalar(c.value(k)))
	}
	return []byte(b.String())
}

// yamlScalar writes v as a YAML scalar. Strings that could be read as
// anything else are double-quoted: Go's escapes (\n, \x00, \u2028, ...) are
// valid in YAML double-quoted scalars.
func yamlScalar(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return strconv.Quote(time.Duration(v.Int()).String())
	case v.Kind() == reflect.String:
		if plain(v.String()) {
			return v.String()
		}
		return strconv.Quote(v.String())
	case v.CanInt():
		return strconv.FormatInt(v.Int(), 10)
	case v.CanFloat():
		f := v.Float()
		switch {
		case f != f:
			return ".nan"
		case f > 0 && f*0 != 0:
			return ".inf"
		case f < 0 && f*0 != 0:
			return "-.inf"
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	panic(fmt.Sprintf("config: no YAML form for %s", v.Type()))
}

// Summary describes c in one line, for `veil config check`.
func (c Config) Summary() string {
	how := c.Redact.Style
	switch c.Redact.Style {
	case "gaussian":
		how += fmt.Sprintf(" sigma=width/%g", c.Redact.SigmaDivisor)
	case "mosaic":
		how += fmt.Sprintf(" %d blocks", c.Redact.MosaicBlocks)
	case "fill":
		how += " " + c.Redact.FillColor
	}
	return fmt.Sprintf("detect %s (score >= %g, every %d frame(s), deadline %s, %d thread(s)); "+
		"redact %s %s, padding %g; track hold %s; models %s; codec %s; log %s/%s",
		c.Detect.Detector, c.Detect.ScoreThreshold, c.Detect.Every, c.Detect.Deadline, c.Detect.Threads,
		how, c.Redact.Shape, c.Redact.Padding, c.Track.Hold, c.Models.Dir, c.Output.Codec,
		c.Log.Level, c.Log.Format)
}

// plain reports whether s can be written unquoted and still read back as the
// same string: a word or path of letters, digits, "_", ".", "/" and "-" that
// starts with a letter, "_" or "/" and is not one of YAML's words for true,
// false or null.
func plain(s string) bool {
	if s == "" || !(isLetter(s[0]) || s[0] == '_' || s[0] == '/') {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !isLetter(c) && !('0' <= c && c <= '9') && !strings.ContainsRune("_./-", rune(c)) {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// Logger builds the process logger l describes, writing to w: text or JSON
// records at l.Level and above.
func (l Log) Logger(w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
