package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// EnvPrefix is the prefix of every configuration environment variable.
const EnvPrefix = "VEIL"

// key is one leaf of Config: its dotted name and where it sits in the struct.
type key struct {
	name  string // "detect.score_threshold"
	index []int  // reflect field index path from Config
	typ   reflect.Type
}

var (
	durationType = reflect.TypeFor[time.Duration]()

	// keys lists every leaf of Config in declaration order.
	keys = leaves(reflect.TypeFor[Config](), "", nil)
	// keyByName indexes keys by name.
	keyByName = func() map[string]key {
		m := make(map[string]key, len(keys))
		for _, k := range keys {
			m[k.name] = k
		}
		return m
	}()
)

// leaves walks t's exported fields by their mapstructure tags; structs are
// sections, everything else (time.Duration included) is a leaf.
func leaves(t reflect.Type, prefix string, index []int) []key {
	var out []key
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if tag == "" || tag == "-" {
			panic(fmt.Sprintf("config: field %s has no mapstructure key", f.Name))
		}
		name := prefix + tag
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct {
			out = append(out, leaves(f.Type, name+".", idx)...)
			continue
		}
		out = append(out, key{name: name, index: idx, typ: f.Type})
	}
	return out
}

// Keys returns every configuration key ("log.level", "detect.score_threshold",
// ...) in the order they appear in Config.
func Keys() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	return out
}

// EnvVar returns the environment variable that sets key:
// EnvVar("detect.score_threshold") is "VEIL_DETECT_SCORE_THRESHOLD".
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Allowed returns what key accepts, as Validate words it ("blazeface, haar",
// "0.05..0.95", "1ms..60s"), or "" for an unknown key.
func Allowed(key string) string {
	l, ok := limits[key]
	if !ok {
		return ""
	}
	return l.allowed()
}

// value returns c's value for k.
func (c Config) value(k key) reflect.Value {
	return reflect.ValueOf(c).FieldByIndex(k.index)
}

// sections returns the top-level keys in order ("log", "models", ...).
func sections() []string {
	var out []string
	for _, k := range keys {
		s, _, _ := strings.Cut(k.name, ".")
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// isSection reports whether name is a section (a key with keys under it).
func isSection(name string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k.name, name+".") {
			return true
		}
	}
	return false
}

// sectionKeys returns the last parts of the keys directly under section.
func sectionKeys(section string) []string {
	var out []string
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k.name, section+"."); ok && !strings.Contains(rest, ".") {
			out = append(out, rest)
		}
	}
	return out
}
