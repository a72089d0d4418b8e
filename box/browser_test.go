package box_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/browsertest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// Geometry of the browser test's source video (640x480): a block texture,
// the astronaut's face with context pasted at faceCrop's place, a green
// marker in the top-left corner and a textured control box with no face.
var (
	browserMarker  = image.Rect(24, 24, 120, 120)
	browserControl = image.Rect(60, 340, 156, 432)
)

// browserSource writes a looping 640x480, 10 fps, 6 s MJPEG AVI whose every
// frame is the same: a block texture, the astronaut's face (box padded 60 %
// each side) and the green marker. It returns the path, the frame (the
// caller closes it) and where the face box is in the frame.
func browserSource(t *testing.T) (string, gocv.Mat, image.Rectangle) {
	t.Helper()
	testenv.Need(t, testenv.Astronaut)
	astro := gocv.IMRead(testenv.Astronaut, gocv.IMReadColor)
	defer astro.Close()
	if astro.Empty() {
		t.Fatalf("cannot read %s", testenv.Astronaut)
	}
	fb := testenv.AstronautFace
	face := image.Rect(fb[0], fb[1], fb[2], fb[3])
	px, py := face.Dx()*6/10, face.Dy()*6/10
	crop := image.Rect(face.Min.X-px, face.Min.Y-py, face.Max.X+px, face.Max.Y+py)
	at := image.Pt(340, 150)

	frame := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
	rng := rand.New(rand.NewPCG(1, 2))
	for y := 0; y < 480; y += 16 {
		for x := 0; x < 640; x += 16 {
			v := uint8(40 + rng.IntN(170))
			gocv.Rectangle(&frame, image.Rect(x, y, x+16, y+16), color.RGBA{R: v, G: v - v/8, B: v - v/4, A: 255}, -1)
		}
	}
	src := astro.Region(crop)
	dst := frame.Region(crop.Sub(crop.Min).Add(at))
	src.CopyTo(&dst)
	dst.Close()
	src.Close()
	gocv.Rectangle(&frame, browserMarker, color.RGBA{G: 255, A: 255}, -1)

	path := filepath.Join(t.TempDir(), "face.avi")
	vw, err := gocv.VideoWriterFile(path, "MJPG", 10, 640, 480, true)
	if err != nil {
		frame.Close()
		t.Fatal(err)
	}
	for range 60 {
		if err := vw.Write(frame); err != nil {
			vw.Close()
			frame.Close()
			t.Fatal(err)
		}
	}
	if err := vw.Close(); err != nil {
		frame.Close()
		t.Fatal(err)
	}
	return path, frame, face.Sub(crop.Min).Add(at)
}

// edgeEnergy is the mean absolute Laplacian of the grey image inside r.
func edgeEnergy(m gocv.Mat, r image.Rectangle) float64 {
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(m, &grey, gocv.ColorBGRToGray)
	lap := gocv.NewMat()
	defer lap.Close()
	gocv.Laplacian(grey, &lap, gocv.MatTypeCV64F, 1, 1, 0, gocv.BorderDefault)
	var sum float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			sum += math.Abs(lap.GetDoubleAt(y, x))
		}
	}
	return sum / float64(r.Dx()*r.Dy())
}

// meanBGR is the mean colour inside r.
func meanBGR(m gocv.Mat, r image.Rectangle) [3]float64 {
	var s [3]float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			v := m.GetVecbAt(y, x)
			for c := range 3 {
				s[c] += float64(v[c])
			}
		}
	}
	n := float64(r.Dx() * r.Dy())
	return [3]float64{s[0] / n, s[1] / n, s[2] / n}
}

// chromiumPath finds Debian's chromium, or skips (fails under CI).
func chromiumPath(tb testing.TB) string { return browsertest.Chromium(tb) }

// openBrowser starts headless chromium for at most d, with extra options (a
// window size); the returned function closes it.
func openBrowser(tb testing.TB, bin string, d time.Duration, extra ...chromedp.ExecAllocatorOption) (context.Context, func()) {
	return browsertest.Open(tb, bin, d, append([]chromedp.ExecAllocatorOption{chromedp.Flag("autoplay-policy", "no-user-gesture-required")}, extra...)...)
}

// browserLogin fills in the login form and waits for waitFor.
func browserLogin(tb testing.TB, bctx context.Context, pw, waitFor string) {
	tb.Helper()
	if err := chromedp.Do(bctx,
		chromedp.WaitVisible(`input[name="user"]`),
		chromedp.SetValue(`input[name="user"]`, "operator"),
		chromedp.SetValue(`input[name="password"]`, pw),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible(waitFor),
	); err != nil {
		tb.Fatalf("logging in with %q: %v", pw, err)
	}
}

// waitPlaying waits until the <video> with this id plays at size: ready,
// the right size, and its time advancing for a second.
func waitPlaying(tb testing.TB, bctx context.Context, id string, size image.Point, deadline time.Time) {
	tb.Helper()
	type state struct {
		Ready  int     `json:"ready"`
		W      int     `json:"w"`
		H      int     `json:"h"`
		T      float64 `json:"t"`
		Status string  `json:"status"`
	}
	probe := fmt.Sprintf(`(() => { const v = document.getElementById(%q);
		return {ready: v.readyState, w: v.videoWidth, h: v.videoHeight, t: v.currentTime, status: v.dataset.state || ''}; })()`, id)
	var st, first state
	var err error
	start := time.Now()
	var firstAt time.Time
	for {
		if st, err = chromedp.Run(bctx, chromedp.Evaluate[state](probe)); err != nil {
			tb.Fatalf("reading the video's state: %v", err)
		}
		ok := st.Ready >= 2 && st.W == size.X && st.H == size.Y
		if !ok {
			firstAt = time.Time{}
		} else if firstAt.IsZero() {
			first, firstAt = st, time.Now()
		} else if time.Since(firstAt) >= time.Second && st.T > first.T {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("video not playing at %dx%d in time: %+v (first ready %+v)", size.X, size.Y, st, first)
		}
		time.Sleep(250 * time.Millisecond)
	}
	tb.Logf("playing after %v: %+v, currentTime %.2f -> %.2f", time.Since(start).Round(time.Millisecond), st, first.T, st.T)
}

// TestBrowserLiveView logs in to the live view with headless Chromium (a
// wrong password first, which is refused), and checks that the camera page's
// own script plays the camera at its size with time advancing, and that the
// picture it shows is the source (the green marker is there, the textured
// background keeps its detail) with the face redacted.
func TestBrowserLiveView(t *testing.T) {
	bin := chromiumPath(t)
	cfg := testConfig(t)
	if _, err := models.Verify(cfg.Models.Dir); err != nil {
		testenv.Missing(t, fmt.Sprintf("face models: %v (run scripts/setup.sh)", err))
	}
	video, srcFrame, faceBox := browserSource(t)
	defer srcFrame.Close()

	_, base, stop := startLiveService(t, cfg, []config.Camera{{Name: "door", Source: video, Loop: true}}, io.Discard)
	defer stop()
	bctx, closeBrowser := openBrowser(t, bin, 40*time.Second)
	// Close the browser (and with it the peer connection) before the
	// service stops: deferred calls run last-in first-out.
	defer closeBrowser()

	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/login")); err != nil {
		t.Fatalf("opening the login page: %v", err)
	}
	// Wrong password: the login form again, with the error.
	browserLogin(t, bctx, "wrong", `p[role="alert"]`)
	alert, err := chromedp.Run(bctx, chromedp.Text(`p[role="alert"]`))
	if err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(alert, "Wrong user name or password") || !strings.HasSuffix(loc, "/login") {
		t.Fatalf("after a wrong password: %q at %s, want the login form with its error", alert, loc)
	}
	if videos, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('video').length`)); err != nil || videos != 0 {
		t.Fatalf("a wrong password shows %d videos (%v)", videos, err)
	}
	browserLogin(t, bctx, "correct horse", `#video-door`)
	deadline := time.Now().Add(25 * time.Second)
	waitPlaying(t, bctx, "video-door", image.Pt(640, 480), deadline)

	// The pictures shown: draw the video on a canvas, again until one shows
	// the source (the marker). Frames redacted whole while the detector
	// catches up (fail-closed: start-up, a keyframe late on a busy machine)
	// are allowed; in every frame grabbed the face must be redacted.
	const grab = `(() => { const v = document.getElementById('video-door');
		const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
		c.getContext('2d').drawImage(v, 0, 0); return c.toDataURL('image/png'); })()`
	faceSrc, ctlSrc := edgeEnergy(srcFrame, faceBox), edgeEnergy(srcFrame, browserControl)
	for grabs := 1; ; grabs++ {
		dataURL, err := chromedp.Run(bctx, chromedp.Evaluate[string](grab))
		if err != nil {
			t.Fatalf("grabbing a frame: %v", err)
		}
		png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(dataURL, "data:image/png;base64,"))
		if err != nil {
			t.Fatalf("frame data URL: %v", err)
		}
		shown, err := gocv.IMDecode(png, gocv.IMReadColor)
		if err != nil {
			t.Fatal(err)
		}
		if shown.Cols() != 640 || shown.Rows() != 480 {
			shown.Close()
			t.Fatalf("frame is %dx%d, want 640x480", shown.Cols(), shown.Rows())
		}
		// The face has lost its detail, in this frame as in every other.
		faceShown := edgeEnergy(shown, faceBox)
		faceCorr, _ := leak.Correlate(srcFrame, shown, faceBox, float64(faceBox.Dx()))
		t.Logf("grab %d: face %v: edge energy %.1f -> %.1f (%.0f %%), band-pass corr %.3f", grabs, faceBox, faceSrc, faceShown, 100*faceShown/faceSrc, faceCorr)
		if faceShown > 0.35*faceSrc || faceCorr > leak.DefaultThreshold {
			t.Errorf("face not redacted in the browser: edge energy %.0f %% of the source's, corr %.3f (threshold %.2f)", 100*faceShown/faceSrc, faceCorr, leak.DefaultThreshold)
		}
		// The green marker: the picture is the source, in place, not a
		// frame redacted whole.
		g := meanBGR(shown, browserMarker.Inset(8))
		if g[1] < 180 || g[0] > 80 || g[2] > 80 {
			shown.Close()
			t.Logf("grab %d: marker mean BGR %.0f: a frame redacted whole (fail-closed); grabbing again", grabs, g)
			if time.Now().After(deadline) {
				t.Fatal("no frame showing the source (the green marker) within 25 s")
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		// The textured control box has kept its detail: redacted, not
		// blurred all over.
		ctlShown := edgeEnergy(shown, browserControl)
		ctlCorr, _ := leak.Correlate(srcFrame, shown, browserControl, float64(browserControl.Dx()))
		shown.Close()
		t.Logf("grab %d: marker mean BGR %.0f; control %v: edge energy %.1f -> %.1f (%.0f %%), band-pass corr %.3f", grabs, g, browserControl, ctlSrc, ctlShown, 100*ctlShown/ctlSrc, ctlCorr)
		if ctlShown < 0.5*ctlSrc || ctlCorr < 0.6 {
			t.Errorf("background lost its detail (edge energy %.0f %%, corr %.3f): the picture is blurred all over, not redacted", 100*ctlShown/ctlSrc, ctlCorr)
		}
		return
	}
}
