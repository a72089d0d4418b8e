// Package camtest is a network camera for tests and benchmarks: an HTTP
// MJPEG stream on loopback, as many IP cameras serve, that can be taken away
// and brought back on the same address, and that records when each frame
// was sent (for glass-to-glass latency).
package camtest

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// Frames makes the JPEG bytes of frame i (counting from 0 on every
// connection). It is called from the serving goroutine.
type Frames func(i int) ([]byte, error)

// Camera is an HTTP MJPEG camera.
type Camera struct {
	tb     testing.TB
	addr   string
	frames Frames
	every  time.Duration

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
	sent map[int]time.Time // frame number -> when it was written to the socket
	keep bool
}

// Start serves frames at fps on a free loopback port until the test ends.
// With record, the send time of every frame is kept for SentAt.
func Start(tb testing.TB, fps float64, frames Frames, record bool) *Camera {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Camera{tb: tb, addr: l.Addr().String(), frames: frames, every: time.Duration(float64(time.Second) / fps), keep: record}
	if record {
		c.sent = map[int]time.Time{}
	}
	c.serve(l)
	tb.Cleanup(c.Stop)
	return c
}

// URL is the stream's address, for a camera's source.
func (c *Camera) URL() string { return "http://" + c.addr + "/camera.mjpg" }

// SentAt is when frame n was last written to a viewer (false if never).
func (c *Camera) SentAt(n int) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.sent[n]
	return t, ok
}

func (c *Camera) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(c.stream), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { _ = srv.Serve(l); close(done) }()
	c.mu.Lock()
	c.srv, c.done = srv, done
	c.mu.Unlock()
}

func (c *Camera) stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for i := 0; ; i++ {
		jpeg, err := c.frames(i)
		if err != nil {
			c.tb.Errorf("camtest: frame %d: %v", i, err)
			return
		}
		if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(jpeg)); err != nil {
			return
		}
		_, _ = w.Write(jpeg)
		_, _ = fmt.Fprint(w, "\r\n")
		w.(http.Flusher).Flush()
		if c.keep {
			c.mu.Lock()
			c.sent[i] = time.Now()
			c.mu.Unlock()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// Stop takes the camera off the network: the listener and every stream.
func (c *Camera) Stop() {
	c.mu.Lock()
	srv, done := c.srv, c.done
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		<-done
	}
}

// Restart brings it back on the same address.
func (c *Camera) Restart() {
	l, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.serve(l)
}

// Still serves one picture as every frame.
func Still(m gocv.Mat) (Frames, error) {
	b, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	if err != nil {
		return nil, fmt.Errorf("camtest: encoding the still: %w", err)
	}
	jpeg := append([]byte(nil), b.GetBytes()...)
	b.Close()
	return func(int) ([]byte, error) { return jpeg, nil }, nil
}

// Solid serves a w×h picture of one colour.
func Solid(w, h int) (Frames, error) {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	m.SetTo(gocv.NewScalar(60, 110, 90, 0))
	return Still(m)
}
