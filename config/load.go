package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// UnknownKeyError is a key in a config file that veil does not know.
type UnknownKeyError struct {
	Key        string // as written in the file, lower-cased
	Suggestion string // a close known key, or ""
}

func (e *UnknownKeyError) Error() string {
	s := fmt.Sprintf("unknown key %q", e.Key)
	switch sec, _, _ := strings.Cut(e.Key, "."); {
	case e.Suggestion != "":
		s += fmt.Sprintf("; did you mean %q?", e.Suggestion)
	case isSection(sec) && sec != e.Key:
		s += fmt.Sprintf("; allowed in %s: %s", sec, strings.Join(sectionKeys(sec), ", "))
	default:
		s += "; allowed sections " + strings.Join(sections(), ", ")
	}
	return s
}

// Load returns the configuration for a run: Default, overlaid by the YAML file
// at path (skipped when path is ""), then by VEIL_* environment variables
// (VEIL_DETECT_SCORE_THRESHOLD for detect.score_threshold; empty variables
// are ignored), then by the flags in flags that were set on the command line,
// each bound to the config key flagKeys gives for its name ({"every":
// "detect.every"}). flags may be nil.
//
// A relative models.dir written in the file is resolved against the file's
// directory; from anywhere else it stays relative to the working directory.
// Durations use Go syntax ("500ms", "2s"); a bare number other than 0 is
// rejected rather than read as nanoseconds.
//
// The result is validated. On any problem Load returns the zero Config and
// every problem found, joined with errors.Join, each prefixed "config PATH: "
// (or "config: " without a file): unknown keys in the file (*UnknownKeyError,
// with a suggestion when a known key is close), values of the wrong type and
// values Validate rejects (*FieldError, naming the environment variable or
// flag when the value came from one).
func Load(path string, flags *pflag.FlagSet, flagKeys map[string]string) (Config, error) {
	where := "config"
	if path != "" {
		where += " " + path
	}
	fail := func(errs []error) (Config, error) {
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = fmt.Errorf("%s: %w", where, e)
		}
		return Config{}, errors.Join(out...)
	}

	v := viper.New()
	for _, k := range keys {
		v.SetDefault(k.name, Default.value(k).Interface())
	}

	// source records where a value came from when it was not the default:
	// "" for the file, else the environment variable or flag.
	source := map[string]string{}
	var errs []error
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fail([]error{err})
		}
		values, ferrs, err := readFile(data)
		if err != nil {
			return fail([]error{err})
		}
		errs = append(errs, ferrs...)
		if err := v.MergeConfigMap(values); err != nil {
			return fail([]error{err})
		}
		for _, k := range keys {
			if v.InConfig(k.name) {
				source[k.name] = ""
			}
		}
	}

	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	for _, k := range keys {
		if err := v.BindEnv(k.name); err != nil {
			return fail([]error{err})
		}
		if os.Getenv(EnvVar(k.name)) != "" {
			source[k.name] = EnvVar(k.name)
		}
	}

	if flags != nil {
		if err := BindFlags(v, flags, flagKeys); err != nil {
			return fail([]error{err})
		}
		for name, key := range flagKeys {
			if flags.Changed(name) {
				source[key] = "--" + name
			}
		}
	}

	var c Config
	if err := v.UnmarshalExact(&c, viper.DecodeHook(decodeHook)); err != nil {
		errs = append(errs, decodeErrors(err)...)
	}
	// Fields that failed to decode are left zero: validate the rest.
	reported := map[string]bool{}
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			reported[fe.Key] = true
		}
	}
	for _, e := range flatten(c.Validate()) {
		var fe *FieldError
		if !errors.As(e, &fe) || !reported[fe.Key] {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		for _, e := range errs {
			var fe *FieldError
			if errors.As(e, &fe) && fe.Source == "" {
				fe.Source = source[fe.Key]
			}
		}
		// Unknown keys first, then by key in Config's order.
		slices.SortStableFunc(errs, func(a, b error) int { return errorOrder(a) - errorOrder(b) })
		return fail(errs)
	}

	if src, ok := source["models.dir"]; ok && src == "" && !filepath.IsAbs(c.Models.Dir) {
		c.Models.Dir = filepath.Join(filepath.Dir(path), c.Models.Dir)
	}
	return c, nil
}

// errorOrder sorts a FieldError by its key and anything else first.
func errorOrder(err error) int {
	var fe *FieldError
	if errors.As(err, &fe) {
		return keyOrder(fe.Key)
	}
	return -1
}

// BindFlags binds flags to config keys in v: flagKeys maps a flag's name to
// its key ({"log-level": "log.level"}). A bound flag overrides the file and
// the environment only when it was set on the command line; its default never
// does. Naming a flag that is not in flags, or a key that does not exist, is
// an error.
func BindFlags(v *viper.Viper, flags *pflag.FlagSet, flagKeys map[string]string) error {
	names := make([]string, 0, len(flagKeys))
	for name := range flagKeys {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := flagKeys[name]
		if _, ok := keyByName[key]; !ok {
			return fmt.Errorf("flag --%s is bound to %q, which is not a config key", name, key)
		}
		f := flags.Lookup(name)
		if f == nil {
			return fmt.Errorf("flag --%s (for %s) is not defined", name, key)
		}
		if err := v.BindPFlag(key, f); err != nil {
			return fmt.Errorf("flag --%s: %w", name, err)
		}
	}
	return nil
}

// readFile parses a YAML config file. It returns the known keys it sets, as
// nested maps for viper, and an error for each key that is unknown, holds
// null or puts a value where a section belongs (or the reverse). err is set
// only when the file is not YAML at all.
func readFile(data []byte) (values map[string]any, errs []error, err error) {
	fv := viper.New()
	fv.SetConfigType("yaml")
	if err := fv.ReadConfig(bytes.NewReader(data)); err != nil {
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			err = pe.Unwrap()
		}
		msg := err.Error()
		if strings.Contains(msg, "into map[string]interface {}") {
			msg = "the top level must be a mapping of sections (" + strings.Join(sections(), ", ") + ")"
		}
		return nil, nil, fmt.Errorf("not valid YAML: %s", msg)
	}
	if line := secondDocument(data); line > 0 {
		return nil, nil, fmt.Errorf("line %d: a second YAML document starts here; veil reads one document per file", line)
	}
	names := fv.AllKeys()
	slices.Sort(names)
	values = map[string]any{}
	underLeaf := map[string]bool{}
	for _, name := range names {
		val := fv.Get(name)
		switch k, known := keyByName[name]; {
		case name == "cameras" || strings.HasPrefix(name, "cameras."):
			// A list read by LoadCameras.
		case known && val == nil:
			msg := "has no value; write one or delete the line; allowed " + Allowed(name)
			if name == "redact.fill_color" {
				msg += ` (quote colours in YAML: "#404040"; an unquoted # starts a comment)`
			}
			errs = append(errs, &FieldError{Key: name, Msg: msg})
		case known:
			sec, leaf, _ := strings.Cut(k.name, ".")
			m, _ := values[sec].(map[string]any)
			if m == nil {
				m = map[string]any{}
				values[sec] = m
			}
			m[leaf] = val
		case isSection(name):
			if val != nil { // an empty section is fine
				errs = append(errs, &FieldError{Key: name, Msg: fmt.Sprintf("%s is not a section; allowed a mapping of %s",
					describe(val), strings.Join(sectionKeys(name), ", "))})
			}
		default:
			if leaf := leafAbove(name); leaf != "" {
				if !underLeaf[leaf] {
					underLeaf[leaf] = true
					errs = append(errs, &FieldError{Key: leaf, Msg: "a mapping is not a value; allowed " + Allowed(leaf)})
				}
				continue
			}
			errs = append(errs, &UnknownKeyError{Key: name, Suggestion: suggest(name)})
		}
	}
	return values, errs, nil
}

// secondDocument returns the line on which a second YAML document starts, or
// 0. Viper reads only the first document of a stream and would silently
// ignore the rest. A document marker cannot occur inside a scalar, so a "---"
// at the start of a line after any content starts a new document.
func secondDocument(data []byte) int {
	content := false
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "---" || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "---\t") {
			if content {
				return i + 1
			}
			content = true
			continue
		}
		if t := strings.TrimSpace(line); t != "" && t[0] != '#' && t[0] != '%' {
			content = true
		}
	}
	return 0
}

// leafAbove returns the known key that name is nested under, or "".
func leafAbove(name string) string {
	for _, k := range keys {
		if strings.HasPrefix(name, k.name+".") {
			return k.name
		}
	}
	return ""
}

// decodeErrors turns mapstructure's errors into *FieldErrors where it can.
func decodeErrors(err error) []error {
	var out []error
	for _, e := range flatten(err) {
		var named interface {
			Name() string
			Unwrap() error
		}
		if !errors.As(e, &named) {
			out = append(out, e)
			continue
		}
		var te *typeError
		if errors.As(e, &te) {
			out = append(out, &FieldError{Key: named.Name(), Msg: te.msg + "; allowed " + Allowed(named.Name())})
			continue
		}
		msg := named.Unwrap().Error()
		if a := Allowed(named.Name()); a != "" {
			msg += "; allowed " + a
		}
		out = append(out, &FieldError{Key: named.Name(), Msg: msg})
	}
	return out
}

// typeError is a value of the wrong type for its key; the decoder adds the key.
type typeError struct{ msg string }

func (e *typeError) Error() string { return e.msg }

func typeErrorf(format string, a ...any) error { return &typeError{fmt.Sprintf(format, a...)} }

// describe words a decoded YAML or environment value for an error message.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case time.Duration:
		return x.String()
	}
	return fmt.Sprint(v)
}

// decodeHook converts file, environment and flag values to the field types,
// more strictly than viper's weak typing: no bools as numbers, no fractions
// as whole numbers, no unit-less durations.
func decodeHook(from, to reflect.Type, data any) (any, error) {
	if data == nil {
		return data, nil
	}
	switch {
	case to == durationType:
		return toDuration(data)
	case to.Kind() == reflect.String:
		return toString(data)
	case to.Kind() == reflect.Int:
		return toInt(data)
	case to.Kind() == reflect.Float64:
		return toFloat(data)
	case to.Kind() == reflect.Struct:
		if from.Kind() != reflect.Map {
			return nil, typeErrorf("%s is not a section", describe(data))
		}
	}
	return data, nil
}

func toDuration(data any) (any, error) {
	switch x := data.(type) {
	case time.Duration:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if s == "0" {
			return time.Duration(0), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, typeErrorf(`%q is not a duration; write it like "500ms" or "2s"`, x)
		}
		return d, nil
	}
	if f, ok := number(data); ok {
		if f == 0 {
			return time.Duration(0), nil
		}
		return nil, typeErrorf(`%s has no unit; write it like "%ss" or "%sms"`, describe(data), describe(data), describe(data))
	}
	return nil, typeErrorf("%s is not a duration", describe(data))
}

func toInt(data any) (any, error) {
	const maxExact = 1 << 53
	switch x := data.(type) {
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 0)
		if err != nil {
			return nil, typeErrorf("%q is not a whole number", x)
		}
		return int(n), nil
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, typeErrorf("%d is too large", x)
		}
		return int(x), nil
	}
	if f, ok := number(data); ok {
		if f != math.Trunc(f) || math.Abs(f) > maxExact {
			return nil, typeErrorf("%s is not a whole number", describe(data))
		}
		return int(f), nil
	}
	return nil, typeErrorf("%s is not a whole number", describe(data))
}

func toFloat(data any) (any, error) {
	if s, ok := data.(string); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, typeErrorf("%q is not a number", s)
		}
		return f, nil
	}
	if f, ok := number(data); ok {
		return f, nil
	}
	return nil, typeErrorf("%s is not a number", describe(data))
}

func toString(data any) (any, error) {
	switch x := data.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	if _, ok := number(data); ok {
		return fmt.Sprint(data), nil
	}
	return nil, typeErrorf("%s is not text", describe(data))
}

// number returns v as a float64 if it is of a numeric kind (bools are not).
func number(v any) (float64, bool) {
	r := reflect.ValueOf(v)
	switch {
	case r.CanInt():
		return float64(r.Int()), true
	case r.CanUint():
		return float64(r.Uint()), true
	case r.CanFloat():
		return r.Float(), true
	}
	return 0, false
}
