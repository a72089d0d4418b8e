package media

import "testing"

// TestDisplay: a camera URL's password never reaches a terminal or a log.
func TestDisplay(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:s3cret@10.0.0.5/stream1", "rtsp://admin:***@10.0.0.5/stream1"},
		{"rtsp://admin:p@ss@10.0.0.5:554/a/b", "rtsp://admin:***@10.0.0.5:554/a/b"},
		{"http://cam.local/video.mjpg", "http://cam.local/video.mjpg"},
		{"rtsp://admin@10.0.0.5/s", "rtsp://admin@10.0.0.5/s"},
		{"/dev/video0", "/dev/video0"},
	}
	for _, tc := range tests {
		if got := Display(tc.in); got != tc.want {
			t.Errorf("Display(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
