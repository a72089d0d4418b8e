package firstrun

import (
	"image"
	"strings"
	"testing"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/testkit/testenv"
)

type configT = config.Config

func TestMain(m *testing.M) { testenv.Main(m) }

func TestChecks(t *testing.T) {
	size := image.Pt(768, 576)
	tests := []struct {
		name string
		err  error
		want string // "" valid
	}{
		{"rtsp", Source("k", "rtsp://10.0.0.5/s"), ""},
		{"https", Source("k", "https://cam/video.mjpg"), ""},
		{"device", Source("k", "/dev/video2"), ""},
		{"file", Source("k", "shop.mp4"), ""},
		{"ftp", Source("k", "ftp://x/y"), `k: "ftp://x/y" is not a camera URL; allowed an rtsp://`},
		{"device name", Source("k", "/dev/videoX"), "is not a V4L2 device name"},
		{"empty source", Source("k", ""), `k: "" is empty; allowed`},
		{"name", Name("site.store", "shop-1"), ""},
		{"bad name", Name("site.store", "shop/1"), `site.store: "shop/1" has '/'; allowed 1..64 of A-Z a-z 0-9 . _ -`},
		{"broker", Field("mqtt.broker", func(c *configT) { c.MQTT.Broker = "ssl://hq:8883" }), ""},
		{"bad broker", Field("mqtt.broker", func(c *configT) { c.MQTT.Broker = "hq:8883" }), `mqtt.broker: "hq:8883" is not a broker URL; allowed`},
		{"bad key", Field("mqtt.head_office_key", func(c *configT) { c.MQTT.HeadOfficeKey = "abc" }), "mqtt.head_office_key: "},
		{"line", lineErr("350,150,350,450", size), ""},
		{"line on the edge", lineErr("0,0,768,576", size), ""},
		{"line outside", lineErr("350,150,350,577", size), "reaches outside the 768x576 frame; allowed x1,y1,x2,y2"},
		{"line point", lineErr("5,5,5,5", size), "A and B are the same point"},
		{"line words", lineErr("left", size), "want four whole numbers"},
		{"area", areaErr("0,0,768,576", size), ""},
		{"area outside", areaErr("0,0,769,576", size), "is not an area of the 768x576 frame; allowed x0,y0,x1,y1 with 0 <= x0 < x1 <= 768"},
		{"area empty", areaErr("5,5,5,9", size), "is not an area"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.want == "" && tc.err != nil:
				t.Errorf("error %v, want none", tc.err)
			case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", tc.err, tc.want)
			}
		})
	}
}

func lineErr(s string, size image.Point) error {
	_, err := ParseLine("cameras[0].lines[0].line", "entrance", s, size)
	return err
}

func areaErr(s string, size image.Point) error {
	_, err := ParseArea("cameras[0].optin_zone", s, size)
	return err
}
