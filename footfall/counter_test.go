package footfall_test

import (
	"errors"
	"fmt"
	"image"
	"slices"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestCounterScenes runs the real motion detector, tracker and line logic on
// rendered scenes whose crossings are known.
func TestCounterScenes(t *testing.T) {
	size := image.Pt(640, 360)
	const fps = 15.0
	// Vertical line pointing down the screen: its left (as seen on screen)
	// is x > 320, so walking leftwards across it is "in".
	line := footfall.Line{Name: "door", A: image.Pt(320, 60), B: image.Pt(320, 340)}
	tests := []struct {
		name    string
		frames  int
		walkers []synth.Walker
		in, out int
	}{
		{"one person walking left is in", 90, []synth.Walker{{From: image.Pt(560, 250), To: image.Pt(80, 250), Start: 10, End: 80, Height: 100}}, 1, 0},
		{"one person walking right is out", 90, []synth.Walker{{From: image.Pt(80, 200), To: image.Pt(560, 200), Start: 10, End: 80, Height: 90}}, 0, 1},
		{"there and back again", 140, []synth.Walker{
			{From: image.Pt(520, 250), To: image.Pt(180, 250), Start: 10, End: 60, Height: 100},
			{From: image.Pt(180, 250), To: image.Pt(520, 250), Start: 61, End: 120, Height: 100},
		}, 1, 1},
		{"loitering on the line counts nothing", 170, []synth.Walker{
			{From: image.Pt(520, 250), To: image.Pt(324, 250), Start: 10, End: 50, Height: 100},
			{From: image.Pt(324, 250), To: image.Pt(324, 250), Start: 51, End: 120, Height: 100, Sway: 6},
			{From: image.Pt(324, 250), To: image.Pt(540, 250), Start: 121, End: 160, Height: 100},
		}, 0, 0},
		{"walking past the end of the line counts nothing", 90, []synth.Walker{{From: image.Pt(560, 355), To: image.Pt(80, 355), Start: 10, End: 80, Height: 80}}, 0, 0},
		{"two people side by side count twice", 90, []synth.Walker{
			{From: image.Pt(560, 250), To: image.Pt(80, 250), Start: 10, End: 80, Height: 100},
			{From: image.Pt(610, 250), To: image.Pt(130, 250), Start: 10, End: 80, Height: 100},
		}, 2, 0},
		{"two people passing each other", 100, []synth.Walker{
			{From: image.Pt(560, 160), To: image.Pt(80, 160), Start: 10, End: 80, Height: 80},
			{From: image.Pt(80, 320), To: image.Pt(560, 320), Start: 15, End: 85, Height: 110},
		}, 1, 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			det, err := footfall.NewMotion(footfall.DefaultMotionOptions)
			if err != nil {
				t.Fatal(err)
			}
			c, err := footfall.NewCounter(det, []footfall.Line{line}, footfall.DefaultTrackOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			scene := synth.NewWalkers(size, tc.walkers, uint64(i+1))
			defer scene.Close()
			frame := gocv.NewMat()
			defer frame.Close()
			for f := 0; f < tc.frames; f++ {
				scene.Render(f, &frame)
				if _, err := c.Frame(frame, time.Duration(float64(f)/fps*float64(time.Second))); err != nil {
					t.Fatal(err)
				}
			}
			got := c.Totals()[0]
			if got.In != tc.in || got.Out != tc.out {
				t.Errorf("in/out = %d/%d, want %d/%d", got.In, got.Out, tc.in, tc.out)
			}
		})
	}
}

// TestCounterOverhead counts people seen from straight above, where a
// person's place is the centre of their blob.
func TestCounterOverhead(t *testing.T) {
	size := image.Pt(640, 360)
	const fps = 15.0
	line := footfall.Line{Name: "door", A: image.Pt(0, 180), B: image.Pt(640, 180)} // left is above: walking down is "in"
	tests := []struct {
		name    string
		walkers []synth.Walker
		in, out int
	}{
		// The scene is empty for the first 40 frames, as a camera that has
		// run for a while before anyone comes: the background model starts
		// out learning fast and would absorb a slow figure at once.
		{"one person walking down is in", []synth.Walker{{From: image.Pt(300, 40), To: image.Pt(300, 330), Start: 45, End: 100, Height: 60, TopDown: true}}, 1, 0},
		{"two side by side walking up are two out", []synth.Walker{
			{From: image.Pt(280, 330), To: image.Pt(280, 40), Start: 45, End: 100, Height: 60, TopDown: true},
			{From: image.Pt(346, 330), To: image.Pt(346, 40), Start: 45, End: 100, Height: 60, TopDown: true},
		}, 0, 2},
		{"standing under the camera on the line counts nothing", []synth.Walker{
			{From: image.Pt(300, 40), To: image.Pt(300, 178), Start: 45, End: 70, Height: 60, TopDown: true},
			{From: image.Pt(300, 178), To: image.Pt(300, 178), Start: 71, End: 100, Height: 60, TopDown: true, Sway: 4},
			{From: image.Pt(300, 178), To: image.Pt(300, 40), Start: 101, End: 125, Height: 60, TopDown: true},
		}, 0, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			det, err := footfall.NewMotion(footfall.DefaultMotionOptions)
			if err != nil {
				t.Fatal(err)
			}
			o := footfall.DefaultTrackOptions
			o.Overhead = true
			c, err := footfall.NewCounter(det, []footfall.Line{line}, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			scene := synth.NewWalkers(size, tc.walkers, uint64(i+11))
			defer scene.Close()
			frame := gocv.NewMat()
			defer frame.Close()
			for f := 0; f < 135; f++ {
				scene.Render(f, &frame)
				if _, err := c.Frame(frame, time.Duration(float64(f)/fps*float64(time.Second))); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.Totals()[0]; got.In != tc.in || got.Out != tc.out {
				t.Errorf("in/out = %d/%d, want %d/%d", got.In, got.Out, tc.in, tc.out)
			}
		})
	}
}

func TestCounterRejectsLineOutsideFrame(t *testing.T) {
	det, err := footfall.NewMotion(footfall.DefaultMotionOptions)
	if err != nil {
		t.Fatal(err)
	}
	c, err := footfall.NewCounter(det, []footfall.Line{{Name: "far", A: image.Pt(0, 0), B: image.Pt(900, 10)}}, footfall.DefaultTrackOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	if _, err := c.Frame(frame, 0); err == nil {
		t.Fatal("a line reaching outside the frame was accepted")
	}
}

// oracle stands in for a person detector network: it reports the true box
// of every walker in the current frame (one box per person, score 0.9) and
// notes the frames it ran on.
type oracle struct {
	walkers []synth.Walker
	frame   int   // the frame being shown; set by the test
	runs    []int // frames Detect ran on
	closed  bool
}

var _ footfall.PersonDetector = (*oracle)(nil)

func (o *oracle) Detect(frame gocv.Mat) ([]footfall.Detection, error) {
	o.runs = append(o.runs, o.frame)
	var out []footfall.Detection
	for _, w := range o.walkers {
		x, y, ok := w.Foot(o.frame)
		if !ok {
			continue
		}
		h := float64(w.Height)
		top := y - h
		if w.TopDown {
			top = y - h/2
		}
		out = append(out, footfall.Detection{Box: image.Rect(int(x-0.2*h), int(top), int(x+0.2*h), int(top+h)), Score: 0.9})
	}
	return out, nil
}

func (o *oracle) Finds() footfall.Finding { return footfall.FindsPeople }
func (o *oracle) Close() error            { o.closed = true; return nil }

// runsIn counts the runs on frames [from, to).
func (o *oracle) runsIn(from, to int) int {
	n := 0
	for _, f := range o.runs {
		if f >= from && f < to {
			n++
		}
	}
	return n
}

// TestCounterPeople counts with a people detector (the oracle) on every
// frame, through the people tracker.
func TestCounterPeople(t *testing.T) {
	const fps = 15.0
	line := footfall.Line{Name: "door", A: image.Pt(320, 60), B: image.Pt(320, 340)} // left is x > 320
	tests := []struct {
		name     string
		walkers  []synth.Walker
		overhead bool
		in, out  int
	}{
		{"one person walking left is in", []synth.Walker{{From: image.Pt(560, 250), To: image.Pt(80, 250), Start: 10, End: 80, Height: 100}}, false, 1, 0},
		{"two people passing each other", []synth.Walker{
			{From: image.Pt(560, 160), To: image.Pt(80, 160), Start: 10, End: 80, Height: 80},
			{From: image.Pt(80, 320), To: image.Pt(560, 320), Start: 15, End: 85, Height: 110},
		}, false, 1, 1},
		{"loitering on the line counts nothing", []synth.Walker{
			{From: image.Pt(520, 250), To: image.Pt(324, 250), Start: 10, End: 50, Height: 100},
			{From: image.Pt(324, 250), To: image.Pt(324, 250), Start: 51, End: 120, Height: 100, Sway: 6},
			{From: image.Pt(324, 250), To: image.Pt(540, 250), Start: 121, End: 160, Height: 100},
		}, false, 0, 0},
		{"walking past the end of the line counts nothing", []synth.Walker{{From: image.Pt(560, 355), To: image.Pt(80, 355), Start: 10, End: 80, Height: 80}}, false, 0, 0},
		{"overhead: walking right is out", []synth.Walker{{From: image.Pt(100, 200), To: image.Pt(560, 200), Start: 10, End: 80, Height: 60, TopDown: true}}, true, 0, 1},
	}
	frame := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			det := &oracle{walkers: tc.walkers}
			o := footfall.DefaultTrackOptions
			o.Overhead = tc.overhead
			c, err := footfall.NewCounter(det, []footfall.Line{line}, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var crossings []footfall.Crossing
			for f := 0; f < 170; f++ {
				det.frame = f
				cr, err := c.Frame(frame, time.Duration(float64(f)/fps*float64(time.Second)))
				if err != nil {
					t.Fatal(err)
				}
				crossings = append(crossings, cr...)
			}
			if got := c.Totals()[0]; got.In != tc.in || got.Out != tc.out {
				t.Errorf("in/out = %d/%d, want %d/%d (%v)", got.In, got.Out, tc.in, tc.out, crossings)
			}
			if len(det.runs) != 170 {
				t.Errorf("detector ran on %d frames, want every one of 170", len(det.runs))
			}
		})
	}
}

func TestCounterRejectsBadPeopleOptions(t *testing.T) {
	line := footfall.Line{A: image.Pt(0, 10), B: image.Pt(10, 10)}
	o := footfall.DefaultTrackOptions
	o.People.LowScore = 0.9 // above HighScore
	if _, err := footfall.NewCounter(&oracle{}, []footfall.Line{line}, o); err == nil || !strings.Contains(err.Error(), "LowScore") {
		t.Errorf("error %v, want one naming LowScore", err)
	}
	// The people options do not matter to a blob detector.
	det, err := footfall.NewMotion(footfall.DefaultMotionOptions)
	if err != nil {
		t.Fatal(err)
	}
	c, err := footfall.NewCounter(det, []footfall.Line{line}, o)
	if err != nil {
		det.Close()
		t.Fatal(err)
	}
	c.Close()
}

// failing fails Detect on the frames listed, else answers like its oracle.
type failing struct {
	*oracle
	fail map[int]bool
}

func (f *failing) Detect(frame gocv.Mat) ([]footfall.Detection, error) {
	if f.fail[f.frame] {
		return nil, errors.New("detector late")
	}
	return f.oracle.Detect(frame)
}

// TestCounterPeopleAt: the counter tells, for each recent frame, the boxes
// of the people it tracked then, each covering the person's true box; a
// frame the detector failed on, one it never saw and one of a blob counter
// are not known.
func TestCounterPeopleAt(t *testing.T) {
	w := synth.Walker{From: image.Pt(40, 300), To: image.Pt(600, 300), Start: 0, End: 40, Height: 120}
	fail := map[int]bool{20: true} // one failure: bridged by the tracker
	for i := 30; i < 40; i++ {     // a second's outage: not
		fail[i] = true
	}
	det := &failing{oracle: &oracle{walkers: []synth.Walker{w}}, fail: fail}
	lines := []footfall.Line{{Name: "l", A: image.Pt(320, 100), B: image.Pt(320, 350)}}
	c, err := footfall.NewCounter(det, lines, footfall.DefaultTrackOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	at := func(i int) time.Duration { return time.Duration(i) * 100 * time.Millisecond }
	for i := 0; i < 40; i++ {
		det.frame = i
		_, err := c.Frame(frame, at(i))
		if (err != nil) != det.fail[i] {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	for i := 0; i < 40; i++ {
		boxes, known := c.PeopleAt(at(i))
		if at(i)-at(29) > 500*time.Millisecond { // staleAfter after the last success at frame 29
			if known {
				t.Errorf("frame %d: the detector has failed for %v, yet the people are known: %v", i, at(i)-at(29), boxes)
			}
			continue
		}
		if !known || len(boxes) != 1 {
			t.Errorf("frame %d: %v, known %v; want one person", i, boxes, known)
			continue
		}
		det.frame = i
		truth, _ := det.oracle.Detect(frame)
		if tb := truth[0].Box; !tb.Inset(4).In(boxes[0]) {
			t.Errorf("frame %d: tracked box %v does not cover the person at %v", i, boxes[0], tb)
		}
	}
	if _, known := c.PeopleAt(at(40)); known {
		t.Error("a frame the counter never saw is known")
	}
	mo, err := footfall.NewMotion(footfall.DefaultMotionOptions)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := footfall.NewCounter(mo, lines, footfall.DefaultTrackOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	if _, err := bc.Frame(frame, 0); err != nil {
		t.Fatal(err)
	}
	if _, known := bc.PeopleAt(0); known {
		t.Error("a blob counter claims to know the people")
	}
}

// lagging runs its oracle in the background: a run started on one frame is
// done only after lag more polls (frames), and Start never waits.
type lagging struct {
	*oracle
	lag      int
	started  int // frame the run in flight was started on, -1 none
	polls    int
	late     map[int]bool // runs started on these frames fail
	maxStart int          // starts seen
}

func (l *lagging) Start(gocv.Mat) error {
	if l.started >= 0 {
		return errors.New("busy")
	}
	l.started, l.polls = l.frame, 0
	l.maxStart++
	return nil
}

func (l *lagging) Poll() ([]footfall.Detection, bool, error) {
	if l.started < 0 {
		return nil, false, nil
	}
	if l.polls++; l.polls <= l.lag {
		return nil, false, nil
	}
	f := l.started
	l.started = -1
	if l.late[f] {
		return nil, true, errors.New("late")
	}
	shown := l.frame
	l.frame = f
	dets, err := l.oracle.Detect(gocv.Mat{})
	l.frame = shown
	return dets, true, err
}

// TestCounterAsyncPeople: with a people detector that runs in the
// background (detections arriving frames after the frame they were found
// on, stamped with its time) the counts are those of a detector that
// answers at once; the frames in between are known from the tracker's
// predictions, and a frame is not known once the detector has failed for
// longer than the staleness allows.
func TestCounterAsyncPeople(t *testing.T) {
	const fps = 15.0
	line := footfall.Line{Name: "door", A: image.Pt(320, 60), B: image.Pt(320, 340)}
	walkers := []synth.Walker{
		{From: image.Pt(560, 160), To: image.Pt(80, 160), Start: 10, End: 80, Height: 80},
		{From: image.Pt(80, 320), To: image.Pt(560, 320), Start: 15, End: 85, Height: 110},
	}
	frame := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	at := func(f int) time.Duration { return time.Duration(float64(f) / fps * float64(time.Second)) }
	late := map[int]bool{}
	for f := 100; f < 130; f++ { // the detector fails for 2 s
		late[f] = true
	}
	for _, lag := range []int{0, 1, 3} {
		t.Run(fmt.Sprint("lag ", lag), func(t *testing.T) {
			det := &lagging{oracle: &oracle{walkers: walkers}, lag: lag, started: -1, late: late}
			gated, err := footfall.NewGated(det, nil, footfall.GateOptions{Every: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			c, err := footfall.NewCounter(gated, []footfall.Line{line}, footfall.DefaultTrackOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var unknown []int
			for f := 0; f < 170; f++ {
				det.frame = f
				if _, err := c.Frame(frame, at(f)); err != nil && !late[det.frame-lag-1] && !late[f] {
					t.Logf("frame %d: %v", f, err)
				}
				if _, known := c.PeopleAt(at(f)); !known {
					unknown = append(unknown, f)
				}
			}
			if tot := c.Totals()[0]; tot.In != 1 || tot.Out != 1 {
				t.Errorf("in/out %d/%d, want 1/1", tot.In, tot.Out)
			}
			// Unknown: the first frames until the first run is collected,
			// and from about 0.7 s into the 2 s outage until a run after it
			// is collected; never the frames while walkers are tracked
			// normally.
			for _, f := range unknown {
				if f > lag+1 && (f < 105 || f > 140) {
					t.Errorf("frame %d not known; unknown frames: %v", f, unknown)
					break
				}
			}
			if !slices.Contains(unknown, 120) {
				t.Errorf("frame 120, 1.3 s into the detector's outage, is known; unknown frames: %v", unknown)
			}
		})
	}
}

// TestCounterPeopleAtHistory: the counter remembers the last 256 frames'
// people, not older ones.
func TestCounterPeopleAtHistory(t *testing.T) {
	w := synth.Walker{From: image.Pt(40, 300), To: image.Pt(600, 300), Start: 0, End: 300, Height: 120}
	det := &oracle{walkers: []synth.Walker{w}}
	c, err := footfall.NewCounter(det, nil, footfall.DefaultTrackOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	at := func(i int) time.Duration { return time.Duration(i) * 40 * time.Millisecond }
	for i := 0; i < 300; i++ {
		det.frame = i
		if _, err := c.Frame(frame, at(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c2 := range []struct {
		frame int
		known bool
	}{{299, true}, {44, true}, {43, false}, {0, false}} {
		if boxes, known := c.PeopleAt(at(c2.frame)); known != c2.known || (known && len(boxes) != 1) {
			t.Errorf("frame %d: %v, known %v; want known %v", c2.frame, boxes, known, c2.known)
		}
	}
}
