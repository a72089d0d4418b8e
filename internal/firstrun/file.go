package firstrun

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/veil-edge/veil/config"
)

// File is what veil init writes: the keys it asked for. Every other key
// keeps its default.
type File struct {
	Store, Device string
	Broker        string // mqtt.broker; empty: no egress
	HeadOfficeKey string // mqtt.head_office_key; empty: none
	Listen        string // http.listen; empty: the default
	User          string // http.user
	PasswordHash  string // http.password_hash; empty: no live view
	ModelsDir     string // models.dir, absolute; empty: the default
	Cameras       []config.Camera
}

type fileYAML struct {
	Site    siteYAML     `yaml:"site"`
	Models  *modelsYAML  `yaml:"models,omitempty"`
	MQTT    *mqttYAML    `yaml:"mqtt,omitempty"`
	HTTP    httpYAML     `yaml:"http"`
	Cameras []cameraYAML `yaml:"cameras"`
}

type siteYAML struct {
	Store  string `yaml:"store"`
	Device string `yaml:"device"`
}

type modelsYAML struct {
	Dir string `yaml:"dir"`
}

type mqttYAML struct {
	Broker        string `yaml:"broker"`
	HeadOfficeKey string `yaml:"head_office_key,omitempty"`
}

type httpYAML struct {
	Listen       string `yaml:"listen,omitempty"`
	User         string `yaml:"user"`
	PasswordHash string `yaml:"password_hash"`
}

type cameraYAML struct {
	Name      string     `yaml:"name"`
	Source    string     `yaml:"source"`
	Loop      bool       `yaml:"loop,omitempty"`
	Lines     []lineYAML `yaml:"lines,omitempty"`
	OptinZone []int      `yaml:"optin_zone,omitempty,flow"`
}

type lineYAML struct {
	Name string `yaml:"name"`
	Line [4]int `yaml:"line,flow"`
}

// YAML renders f as a config file, header (comment lines, each starting
// with "# ") first.
func (f File) YAML(header string) ([]byte, error) {
	doc := fileYAML{
		Site: siteYAML{Store: f.Store, Device: f.Device},
		HTTP: httpYAML{Listen: f.Listen, User: f.User, PasswordHash: f.PasswordHash},
	}
	if f.ModelsDir != "" {
		doc.Models = &modelsYAML{Dir: f.ModelsDir}
	}
	if f.Broker != "" || f.HeadOfficeKey != "" {
		doc.MQTT = &mqttYAML{Broker: f.Broker, HeadOfficeKey: f.HeadOfficeKey}
	}
	doc.Cameras = []cameraYAML{}
	for _, c := range f.Cameras {
		cy := cameraYAML{Name: c.Name, Source: c.Source, Loop: c.Loop, OptinZone: c.OptinZone}
		for _, l := range c.Lines {
			cy.Lines = append(cy.Lines, lineYAML(l))
		}
		doc.Cameras = append(doc.Cameras, cy)
	}
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("rendering the config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rendering the config: %w", err)
	}
	return b.Bytes(), nil
}
