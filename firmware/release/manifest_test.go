package release

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const (
	hashA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hashB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// manifestJSON is a valid manifest with the files object replaced by files.
func manifestJSON(version, minFrom, files string) string {
	return fmt.Sprintf(`{"version":%q,"min_from":%q,"files":%s}`, version, minFrom, files)
}

func TestParseManifest(t *testing.T) {
	in := manifestJSON("1.1.0", "1.0.0", `{"veil":"`+hashA+`","models/face.onnx":"`+hashB+`"}`)
	m, err := ParseManifest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Manifest{Version: "1.1.0", MinFrom: "1.0.0", Files: map[string]string{"veil": hashA, "models/face.onnx": hashB}}
	if !m.Equal(want) {
		t.Fatalf("ParseManifest = %+v, want %+v", m, want)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseManifest(b)
	if err != nil || !m2.Equal(m) {
		t.Fatalf("round trip: %+v, %v", m2, err)
	}
}

func TestParseManifestRefuses(t *testing.T) {
	files := `{"veil":"` + hashA + `"}`
	many := make([]string, MaxFiles+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"f%d":"%s"`, i, hashA)
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not an object", `[]`, "not a JSON object"},
		{"empty", ``, "manifest: EOF"},
		{"unknown field", `{"version":"1.0.0","min_from":"1.0.0","files":` + files + `,"extra":1}`, `unknown field "extra"`},
		{"field case", `{"Version":"1.0.0","min_from":"1.0.0","files":` + files + `}`, `unknown field "Version"`},
		{"field twice", `{"version":"1.0.0","version":"1.0.0","min_from":"1.0.0","files":` + files + `}`, `field "version" given twice`},
		{"missing files", `{"version":"1.0.0","min_from":"1.0.0"}`, `missing field "files"`},
		{"missing min_from", `{"version":"1.0.0","files":` + files + `}`, `missing field "min_from"`},
		{"trailing data", manifestJSON("1.0.0", "1.0.0", files) + `{}`, "data after the object"},
		{"null version", `{"version":null,"min_from":"1.0.0","files":` + files + `}`, "manifest version: want a string"},
		{"number version", `{"version":1,"min_from":"1.0.0","files":` + files + `}`, "manifest version: want a string"},
		{"bad version", manifestJSON("1.0", "1.0.0", files), "manifest version"},
		{"bad min_from", manifestJSON("1.0.0", "1.0.0-rc1", files), "manifest min_from"},
		{"min_from after version", manifestJSON("1.0.0", "1.0.1", files), "manifest min_from: 1.0.1 is later than version 1.0.0"},
		{"files not object", manifestJSON("1.0.0", "1.0.0", `[]`), "manifest files"},
		{"no files", manifestJSON("1.0.0", "1.0.0", `{}`), "manifest files: empty"},
		{"too many files", manifestJSON("1.0.0", "1.0.0", "{"+strings.Join(many, ",")+"}"), "manifest files: more than 1000 files"},
		{"path twice", manifestJSON("1.0.0", "1.0.0", `{"veil":"`+hashA+`","veil":"`+hashB+`"}`), `path "veil" given twice`},
		{"hash not string", manifestJSON("1.0.0", "1.0.0", `{"veil":1}`), `path "veil": want a string`},
		{"absolute", manifestJSON("1.0.0", "1.0.0", `{"/etc/passwd":"`+hashA+`"}`), "absolute"},
		{"traversal", manifestJSON("1.0.0", "1.0.0", `{"../x":"`+hashA+`"}`), `has ".."`},
		{"inner traversal", manifestJSON("1.0.0", "1.0.0", `{"models/../../x":"`+hashA+`"}`), `has ".."`},
		{"backslash", manifestJSON("1.0.0", "1.0.0", `{"models\\x":"`+hashA+`"}`), "backslash"},
		{"drive", manifestJSON("1.0.0", "1.0.0", `{"C:x":"`+hashA+`"}`), "Windows drive"},
		{"not clean", manifestJSON("1.0.0", "1.0.0", `{"models//x":"`+hashA+`"}`), "not clean"},
		{"dot", manifestJSON("1.0.0", "1.0.0", `{"./veil":"`+hashA+`"}`), "not clean"},
		{"trailing slash", manifestJSON("1.0.0", "1.0.0", `{"models/":"`+hashA+`"}`), "not clean"},
		{"empty path", manifestJSON("1.0.0", "1.0.0", `{"":"`+hashA+`"}`), `path "": empty`},
		{"control character", manifestJSON("1.0.0", "1.0.0", `{"a\u0000b":"`+hashA+`"}`), "control character"},
		{"long path", manifestJSON("1.0.0", "1.0.0", `{"`+strings.Repeat("a", MaxPathLen+1)+`":"`+hashA+`"}`), "more than 255"},
		{"reserved", manifestJSON("1.0.0", "1.0.0", `{"manifest.json":"`+hashA+`"}`), "reserved"},
		{"file and directory", manifestJSON("1.0.0", "1.0.0", `{"models":"`+hashA+`","models/x":"`+hashB+`"}`), `"models" is both a file and the directory of "models/x"`},
		{"short hash", manifestJSON("1.0.0", "1.0.0", `{"veil":"abc"}`), `manifest files "veil": sha256 "abc": 3 characters`},
		{"uppercase hash", manifestJSON("1.0.0", "1.0.0", `{"veil":"`+strings.ToUpper(hashA)+`"}`), "not a lowercase hex digit"},
		{"non-hex hash", manifestJSON("1.0.0", "1.0.0", `{"veil":"`+strings.Repeat("g", 64)+`"}`), "not a lowercase hex digit"},
		{"too large", strings.Repeat(" ", maxManifestSize+1), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseManifest accepted it: %+v", m)
			}
			if !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest = %v; want an ErrInvalidManifest containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParseManifest checks that ParseManifest never panics, that whatever it
// accepts is valid and survives marshal → parse unchanged, and that no
// accepted path could leave the extraction directory.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(manifestJSON("1.1.0", "1.0.0", `{"veil":"`+hashA+`","models/face.onnx":"`+hashB+`"}`)))
	f.Add([]byte(manifestJSON("0.0.0", "0.0.0", `{"a/b/c":"`+hashA+`"}`)))
	f.Add([]byte(manifestJSON("1.0.0", "1.0.0", `{"../x":"`+hashA+`"}`)))
	f.Add([]byte(manifestJSON("1.0.0", "1.0.0", `{"\u002e\u002e/x":"`+hashA+`"}`)))
	f.Add([]byte(`{"files":{},"version":"","min_from":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("error does not wrap ErrInvalidManifest: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid manifest: %v", err)
		}
		for p := range m.Files {
			if strings.HasPrefix(p, "/") || hasDotDot(p) || strings.Contains(p, `\`) {
				t.Fatalf("accepted unsafe path %q", p)
			}
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("cannot marshal accepted manifest %+v: %v", m, err)
		}
		m2, err := ParseManifest(b)
		if err != nil || !m2.Equal(m) {
			t.Fatalf("round trip changed the manifest: %+v -> %+v (%v)", m, m2, err)
		}
	})
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}
