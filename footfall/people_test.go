package footfall

import (
	"image"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// walker is a person a perfect-but-noisy person detector sees: their place
// moves in a straight line from from (at t0) to to (at t1), and each run of
// the detector between t0 and t1 reports their box with score, unless the
// run falls in a hidden span (or in a span with its own score).
type walker struct {
	from, to [2]float64 // place: foot point, or centre overhead
	t0, t1   time.Duration
	h        float64 // box height, pixels
	score    float32 // default 0.9
	spans    []span
	jitter   float64 // box edges move by up to this many pixels
}

// span is a time in which a walker's detections score differently; score 0
// hides them.
type span struct {
	from, to time.Duration
	score    float32
}

func (w walker) place(at time.Duration) (x, y float64) {
	f := 0.0
	if w.t1 > w.t0 {
		f = float64(at-w.t0) / float64(w.t1-w.t0)
	}
	return w.from[0] + f*(w.to[0]-w.from[0]), w.from[1] + f*(w.to[1]-w.from[1])
}

func (w walker) detect(at time.Duration, overhead bool, rng *rand.Rand) (Detection, bool) {
	if at < w.t0 || at > w.t1 {
		return Detection{}, false
	}
	s := w.score
	if s == 0 {
		s = 0.9
	}
	for _, sp := range w.spans {
		if at >= sp.from && at < sp.to {
			s = sp.score
		}
	}
	if s == 0 {
		return Detection{}, false
	}
	x, y := w.place(at)
	top := y - w.h
	if overhead {
		top = y - w.h/2
	}
	j := func() float64 { return w.jitter * (2*rng.Float64() - 1) }
	half := 0.2 * w.h
	b := image.Rect(int(math.Round(x-half+j())), int(math.Round(top+j())), int(math.Round(x+half+j())), int(math.Round(top+w.h+j())))
	return Detection{Box: b, Score: s}, true
}

// scene is walkers seen by a detector run at the times times gives.
type scene struct {
	walkers []walker
	times   []time.Duration
	extra   map[time.Duration][]Detection // false positives
}

// every returns the times from 0 to end, step apart.
func every(step, end time.Duration) []time.Duration {
	var out []time.Duration
	for at := time.Duration(0); at <= end; at += step {
		out = append(out, at)
	}
	return out
}

// irregular returns times from 0 to end with gaps drawn from [lo, hi].
func irregular(lo, hi, end time.Duration, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, 9))
	var out []time.Duration
	for at := time.Duration(0); at <= end; at += lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) {
		out = append(out, at)
	}
	return out
}

type result struct {
	in, out int
	ids     [][]int // per walker, the confirmed tracks matched to them, in order, no repeats
}

// play runs the people tracker over a scene and reports the crossings and
// which confirmed track followed each walker: a track matched on a run
// within a fifth of the walker's height of them, on the runs where no other
// walker is within half a height (when two meet, who is who is for the
// tracker to keep, not for the test to guess).
func play(t *testing.T, sc scene, lines []Line, o TrackOptions) result {
	t.Helper()
	if err := o.Validate(FindsPeople); err != nil {
		t.Fatal(err)
	}
	var geoms []geom
	for _, l := range lines {
		geoms = append(geoms, newGeom(l))
	}
	tr := newPeopleTracker(o)
	rng := rand.New(rand.NewPCG(7, 7))
	res := result{ids: make([][]int, len(sc.walkers))}
	for _, at := range sc.times {
		var dets []Detection
		for _, w := range sc.walkers {
			if d, ok := w.detect(at, o.Overhead, rng); ok {
				dets = append(dets, d)
			}
		}
		dets = append(dets, sc.extra[at]...)
		for _, e := range tr.update(at, dets, geoms) {
			if e.at > at {
				t.Errorf("crossing at %v reported at %v", e.at, at)
			}
			if e.dir == In {
				res.in++
			} else {
				res.out++
			}
		}
		for _, p := range tr.tracks {
			if !p.confirmed || p.seen != at {
				continue
			}
			x, y := p.kf.place()
			for i, w := range sc.walkers {
				if at < w.t0 || at > w.t1 {
					continue
				}
				wx, wy := w.place(at)
				alone := true
				for k, v := range sc.walkers {
					if vx, vy := v.place(at); k != i && at >= v.t0 && at <= v.t1 && math.Hypot(vx-wx, vy-wy) < w.h/2 {
						alone = false
					}
				}
				if alone && math.Hypot(x-wx, y-wy) < w.h/5 {
					if ids := res.ids[i]; len(ids) == 0 || ids[len(ids)-1] != p.id {
						res.ids[i] = append(ids, p.id)
					}
				}
			}
		}
	}
	return res
}

const sec = time.Second

// A horizontal line from (0,200) to (640,200): its left (as seen on screen)
// is above it, so walking down the screen across it is "in".
var across = []Line{{Name: "door", A: image.Pt(0, 200), B: image.Pt(640, 200)}}

func TestPeopleTracker(t *testing.T) {
	down := walker{from: [2]float64{300, 100}, to: [2]float64{300, 320}, t0: 0, t1: 2 * sec, h: 100}
	tests := []struct {
		name     string
		sc       scene
		overhead bool
		in, out  int
		oneID    bool // every walker followed by one track throughout
	}{
		{name: "one person walking down is in", sc: scene{walkers: []walker{down}, times: every(100*ms, 3*sec)}, in: 1, oneID: true},
		{name: "one person walking up at 25 fps with jitter is out", sc: scene{walkers: []walker{{from: [2]float64{200, 330}, to: [2]float64{260, 90}, t1: 2 * sec, h: 110, jitter: 4}}, times: every(40*ms, 3*sec)}, out: 1, oneID: true},
		{
			// A walks down and right, B up and right; their paths cross on
			// the line, where B is half hidden behind A (low scores). An
			// identity swap would turn both back and count nothing.
			name: "two people crossing paths on the line keep their tracks",
			sc: scene{walkers: []walker{
				{from: [2]float64{100, 110}, to: [2]float64{500, 290}, t1: 3 * sec, h: 100, jitter: 2},
				{from: [2]float64{100, 290}, to: [2]float64{500, 110}, t1: 3 * sec, h: 100, jitter: 2, spans: []span{{1300 * ms, 1700 * ms, 0.35}}},
			}, times: every(100*ms, 4*sec)},
			in: 1, out: 1, oneID: true,
		},
		{
			name: "two people crossing paths, one hidden for a moment",
			sc: scene{walkers: []walker{
				{from: [2]float64{100, 110}, to: [2]float64{500, 290}, t1: 3 * sec, h: 100, jitter: 2},
				{from: [2]float64{100, 290}, to: [2]float64{500, 110}, t1: 3 * sec, h: 100, jitter: 2, spans: []span{{1300 * ms, 1700 * ms, 0}}},
			}, times: every(100*ms, 4*sec)},
			in: 1, out: 1, oneID: true,
		},
		{
			// Head on: they meet on the line, where B is fully hidden
			// behind A; only their velocities tell them apart after.
			name: "two people passing head on, one hidden behind the other",
			sc: scene{walkers: []walker{
				{from: [2]float64{100, 120}, to: [2]float64{500, 280}, t1: 3 * sec, h: 100, jitter: 2},
				{from: [2]float64{500, 300}, to: [2]float64{100, 100}, t1: 3 * sec, h: 100, jitter: 2, spans: []span{{1200 * ms, 1800 * ms, 0}}},
			}, times: every(100*ms, 4*sec)},
			in: 1, out: 1, oneID: true,
		},
		{
			// Both hidden by a pillar as they meet on the line: only their
			// velocities tell who comes out where.
			name: "two people passing head on behind a pillar",
			sc: scene{walkers: []walker{
				{from: [2]float64{100, 120}, to: [2]float64{500, 280}, t1: 3 * sec, h: 100, jitter: 2, spans: []span{{1200 * ms, 1800 * ms, 0}}},
				{from: [2]float64{500, 300}, to: [2]float64{100, 100}, t1: 3 * sec, h: 100, jitter: 2, spans: []span{{1200 * ms, 1800 * ms, 0}}},
			}, times: every(100*ms, 4*sec)},
			in: 1, out: 1, oneID: true,
		},
		{
			name: "hidden for 4 runs while crossing is counted once seen again",
			sc:   scene{walkers: []walker{{from: [2]float64{300, 100}, to: [2]float64{300, 320}, t1: 2 * sec, h: 100, spans: []span{{800 * ms, 1200 * ms, 0}}}}, times: every(100*ms, 3*sec)},
			in:   1, oneID: true,
		},
		{
			name: "hidden for 0.9 s at 5 Hz while crossing is counted once seen again",
			sc:   scene{walkers: []walker{{from: [2]float64{300, 80}, to: [2]float64{340, 330}, t1: 3 * sec, h: 100, spans: []span{{1000 * ms, 1900 * ms, 0}}}}, times: every(200*ms, 4*sec)},
			in:   1, oneID: true,
		},
		{
			// Leaves through a door just short of the line: its prediction
			// would carry it across, but predictions never count.
			name: "lost just before the line counts nothing",
			sc:   scene{walkers: []walker{{from: [2]float64{300, 60}, to: [2]float64{300, 190}, t1: 1300 * ms, h: 100}}, times: every(100*ms, 3*sec)},
		},
		{
			name: "one-run false positives count nothing",
			sc: scene{times: every(100*ms, 2*sec), extra: map[time.Duration][]Detection{
				300 * ms: {{Box: image.Rect(280, 80, 320, 180), Score: 0.9}},
				400 * ms: {{Box: image.Rect(280, 140, 320, 240), Score: 0.9}},
				500 * ms: {{Box: image.Rect(280, 130, 320, 230), Score: 0.95}},
			}},
		},
		{
			// Two runs above, a run without, two below: a tentative track
			// ends on its first miss, so the blip never has the hits.
			name: "a flickering false positive across the line counts nothing",
			sc: scene{times: every(100*ms, 2*sec), extra: map[time.Duration][]Detection{
				300 * ms: {{Box: image.Rect(280, 70, 320, 170), Score: 0.8}},
				400 * ms: {{Box: image.Rect(280, 80, 320, 180), Score: 0.8}},
				600 * ms: {{Box: image.Rect(280, 125, 320, 225), Score: 0.8}},
				700 * ms: {{Box: image.Rect(280, 130, 320, 230), Score: 0.8}},
			}},
		},
		{
			// Box edges jump by up to 14 % of the height, past the 10 % band
			// on both sides, while the person stands still on the line.
			name: "standing on the line with detector jitter counts nothing",
			sc: scene{walkers: []walker{
				{from: [2]float64{300, 100}, to: [2]float64{300, 198}, t1: 1 * sec, h: 100, jitter: 2},
				{from: [2]float64{300, 198}, to: [2]float64{300, 198}, t0: 1*sec + 100*ms, t1: 5 * sec, h: 100, jitter: 14},
				{from: [2]float64{300, 198}, to: [2]float64{300, 100}, t0: 5*sec + 100*ms, t1: 6 * sec, h: 100, jitter: 2},
			}, times: every(100*ms, 7*sec)},
		},
		{
			name: "low scores alone never start a track",
			sc:   scene{walkers: []walker{{from: [2]float64{300, 100}, to: [2]float64{300, 320}, t1: 2 * sec, h: 100, score: 0.4}}, times: every(100*ms, 3*sec)},
		},
		{
			// 1.6 s of low scores (longer than MaxAge) mid-crossing: only the
			// second pass keeps the track, which a new one on the far side
			// could not count.
			name: "low scores keep a track alive across the line",
			sc:   scene{walkers: []walker{{from: [2]float64{300, 80}, to: [2]float64{300, 330}, t1: 3 * sec, h: 100, spans: []span{{700 * ms, 2300 * ms, 0.3}}}}, times: every(100*ms, 4*sec)},
			in:   1, oneID: true,
		},
		{
			name: "scores below LowScore are ignored",
			sc:   scene{walkers: []walker{{from: [2]float64{300, 80}, to: [2]float64{300, 330}, t1: 3 * sec, h: 100, spans: []span{{700 * ms, 2300 * ms, 0.1}}}}, times: every(100*ms, 4*sec)},
		},
		{
			name: "irregular times from 40 to 300 ms",
			sc: scene{walkers: []walker{
				{from: [2]float64{200, 90}, to: [2]float64{230, 320}, t1: 2500 * ms, h: 100, jitter: 3},
				{from: [2]float64{420, 320}, to: [2]float64{380, 90}, t0: 500 * ms, t1: 3 * sec, h: 100, jitter: 3},
			}, times: irregular(40*ms, 300*ms, 4*sec, 1)},
			in: 1, out: 1, oneID: true,
		},
		{
			name: "side by side with irregular times",
			sc: scene{walkers: []walker{
				{from: [2]float64{250, 90}, to: [2]float64{250, 320}, t1: 2500 * ms, h: 100, jitter: 2},
				{from: [2]float64{310, 95}, to: [2]float64{310, 325}, t1: 2500 * ms, h: 100, jitter: 2},
			}, times: irregular(50*ms, 250*ms, 3*sec, 2)},
			in: 2, oneID: true,
		},
		{
			name: "walking past the end of the line counts nothing",
			sc:   scene{walkers: []walker{{from: [2]float64{700, 100}, to: [2]float64{700, 320}, t1: 2 * sec, h: 100}}, times: every(100*ms, 3*sec)},
		},
		{
			// Place is the box centre: it stays above the line though the
			// feet would cross it.
			name:     "overhead: the centre stays above the line",
			sc:       scene{walkers: []walker{{from: [2]float64{300, 60}, to: [2]float64{300, 185}, t1: 2 * sec, h: 60}}, times: every(100*ms, 3*sec)},
			overhead: true,
		},
		{
			name:     "overhead: the centre crosses",
			sc:       scene{walkers: []walker{{from: [2]float64{300, 60}, to: [2]float64{300, 320}, t1: 2 * sec, h: 60, jitter: 2}}, times: every(100*ms, 3*sec)},
			overhead: true, in: 1, oneID: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := scenarioOptions()
			o.Overhead = tc.overhead
			got := play(t, tc.sc, across, o)
			if got.in != tc.in || got.out != tc.out {
				t.Errorf("in/out = %d/%d, want %d/%d", got.in, got.out, tc.in, tc.out)
			}
			if tc.oneID {
				seen := map[int]bool{}
				for i, ids := range got.ids {
					if len(ids) != 1 {
						t.Errorf("walker %d followed by tracks %v, want one", i, ids)
					}
					for _, id := range ids {
						if seen[id] {
							t.Errorf("track %d followed two walkers (%v)", id, got.ids)
						}
						seen[id] = true
					}
				}
			}
		})
	}
}

// TestPeopleTrackerFootOnAngledCamera is the overhead case from an angled
// camera: the feet cross, so it counts.
func TestPeopleTrackerFootOnAngledCamera(t *testing.T) {
	sc := scene{walkers: []walker{{from: [2]float64{300, 90}, to: [2]float64{300, 215}, t1: 2 * sec, h: 60}}, times: every(100*ms, 3*sec)}
	if got := play(t, sc, across, scenarioOptions()); got.in != 1 || got.out != 0 {
		t.Errorf("in/out = %d/%d, want 1/0", got.in, got.out)
	}
}

// TestPeopleTrackerLifecycle follows one track's states run by run.
func TestPeopleTrackerLifecycle(t *testing.T) {
	box := func(y int) []Detection { return []Detection{{Box: image.Rect(280, y-100, 320, y), Score: 0.9}} }
	type run struct {
		at   time.Duration
		dets []Detection
		skip bool // the detector did not run: coast
		// want after the run
		tracks, confirmed int
		crossings         int
	}
	tests := []struct {
		name string
		o    func(*PeopleOptions)
		runs []run
	}{
		{
			name: "confirmed on the third hit, coasts, ends after MaxAge",
			runs: []run{
				{at: 0, dets: box(100), tracks: 1},
				{at: 100 * ms, dets: box(105), tracks: 1},
				{at: 200 * ms, dets: box(110), tracks: 1, confirmed: 1},
				{at: 700 * ms, tracks: 1, confirmed: 1},
				{at: 1200 * ms, tracks: 1, confirmed: 1},
				{at: 1201 * ms},
			},
		},
		{
			name: "a tentative track ends on its first miss",
			runs: []run{
				{at: 0, dets: box(100), tracks: 1},
				{at: 100 * ms, dets: box(105), tracks: 1},
				{at: 200 * ms},
			},
		},
		{
			name: "with TentativeMisses 1 a tentative track survives one miss, not two",
			o:    func(o *PeopleOptions) { o.TentativeMisses = 1 },
			runs: []run{
				{at: 0, dets: box(100), tracks: 1},
				{at: 100 * ms, tracks: 1},
				{at: 200 * ms, dets: box(110), tracks: 1},
				{at: 300 * ms, dets: box(115), tracks: 1, confirmed: 1},
				{at: 400 * ms, dets: box(120), tracks: 1, confirmed: 1},
			},
		},
		{
			name: "with TentativeMisses 1 two misses in a row end a tentative track",
			o:    func(o *PeopleOptions) { o.TentativeMisses = 1 },
			runs: []run{
				{at: 0, dets: box(100), tracks: 1},
				{at: 100 * ms, tracks: 1},
				{at: 200 * ms},
			},
		},
		{
			name: "skipped frames are not misses, but the birth window runs",
			runs: []run{
				{at: 0, dets: box(100), tracks: 1},
				{at: 100 * ms, skip: true, tracks: 1},
				{at: 200 * ms, dets: box(110), tracks: 1},
				{at: 1100 * ms, skip: true},
			},
		},
		{
			// The crossing falls on the third and fourth hits; it is held
			// until the fifth confirms the track.
			name: "crossings while tentative are held until confirmed",
			o:    func(o *PeopleOptions) { o.MinHits = 5 },
			runs: []run{
				{at: 0, dets: box(180), tracks: 1},
				{at: 100 * ms, dets: box(185), tracks: 1},
				{at: 200 * ms, dets: box(230), tracks: 1},
				{at: 300 * ms, dets: box(240), tracks: 1},
				{at: 400 * ms, dets: box(250), tracks: 1, confirmed: 1, crossings: 1},
			},
		},
		{
			name: "a track ending tentative drops its crossings",
			o:    func(o *PeopleOptions) { o.MinHits = 5 },
			runs: []run{
				{at: 0, dets: box(180), tracks: 1},
				{at: 100 * ms, dets: box(185), tracks: 1},
				{at: 200 * ms, dets: box(230), tracks: 1},
				{at: 300 * ms, dets: box(240), tracks: 1},
				{at: 400 * ms},
				{at: 500 * ms, dets: box(250), tracks: 1},
			},
		},
		{
			name: "MinHits 1 confirms at once",
			o:    func(o *PeopleOptions) { o.MinHits = 1 },
			runs: []run{{at: 0, dets: box(100), tracks: 1, confirmed: 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := scenarioOptions()
			if tc.o != nil {
				tc.o(&o.People)
			}
			if err := o.Validate(FindsPeople); err != nil {
				t.Fatal(err)
			}
			tr := newPeopleTracker(o)
			g := []geom{newGeom(across[0])}
			crossings := 0
			for _, r := range tc.runs {
				if r.skip {
					tr.coast(r.at)
				} else {
					crossings += len(tr.update(r.at, r.dets, g))
				}
				confirmed := 0
				for _, p := range tr.tracks {
					if p.confirmed {
						confirmed++
					}
				}
				if len(tr.tracks) != r.tracks || confirmed != r.confirmed || crossings != r.crossings {
					t.Fatalf("after %v: %d tracks, %d confirmed, %d crossings; want %d, %d, %d", r.at, len(tr.tracks), confirmed, crossings, r.tracks, r.confirmed, r.crossings)
				}
			}
		})
	}
}

func TestPeopleOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		set  func(*PeopleOptions)
		want string // substring of the error; "" for none
	}{
		{"defaults", func(*PeopleOptions) {}, ""},
		{"HighScore 0", func(o *PeopleOptions) { o.HighScore = 0 }, "HighScore"},
		{"HighScore above 1", func(o *PeopleOptions) { o.HighScore = 1.5 }, "HighScore"},
		{"LowScore above HighScore", func(o *PeopleOptions) { o.LowScore = 0.6 }, "LowScore"},
		{"LowScore negative", func(o *PeopleOptions) { o.LowScore = -0.1 }, "LowScore"},
		{"LowScore equal to HighScore", func(o *PeopleOptions) { o.LowScore = o.HighScore }, ""},
		{"MinHits 0", func(o *PeopleOptions) { o.MinHits = 0 }, "MinHits"},
		{"BirthWindow 0", func(o *PeopleOptions) { o.BirthWindow = 0 }, "BirthWindow"},
		{"TentativeMisses 11", func(o *PeopleOptions) { o.TentativeMisses = 11 }, "TentativeMisses"},
		{"MaxAge negative", func(o *PeopleOptions) { o.MaxAge = -1 }, "MaxAge"},
		{"MaxAge an hour", func(o *PeopleOptions) { o.MaxAge = time.Hour }, "MaxAge"},
		{"Gate 0", func(o *PeopleOptions) { o.Gate = 0 }, "Gate"},
		{"Gate NaN", func(o *PeopleOptions) { o.Gate = math.NaN() }, "Gate"},
		{"HeightRatio 1", func(o *PeopleOptions) { o.HeightRatio = 1 }, "HeightRatio"},
		{"IoUWeight above 1", func(o *PeopleOptions) { o.IoUWeight = 2 }, "IoUWeight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultPeopleOptions
			tc.set(&o)
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestTrackOptionsValidate(t *testing.T) {
	tests := []struct {
		name  string
		finds Finding
		set   func(*TrackOptions)
		want  string
	}{
		{"blob defaults", FindsBlobs, func(*TrackOptions) {}, ""},
		{"people defaults", FindsPeople, func(*TrackOptions) {}, ""},
		{"Band negative", FindsPeople, func(o *TrackOptions) { o.Band = -0.1 }, "Band"},
		{"blob MaxGap 0", FindsBlobs, func(o *TrackOptions) { o.MaxGap = 0 }, "MaxGap"},
		{"blob Gate 0", FindsBlobs, func(o *TrackOptions) { o.Gate = 0 }, "Gate"},
		{"blob MinHits 0", FindsBlobs, func(o *TrackOptions) { o.MinHits = 0 }, "MinHits"},
		{"blob options unused for people", FindsPeople, func(o *TrackOptions) { o.MaxGap = 0 }, ""},
		{"people options unused for blobs", FindsBlobs, func(o *TrackOptions) { o.People = PeopleOptions{} }, ""},
		{"people options checked for people", FindsPeople, func(o *TrackOptions) { o.People = PeopleOptions{} }, "HighScore"},
		{"unknown finding", Finding(7), func(*TrackOptions) {}, "Finding(7)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := scenarioOptions()
			tc.set(&o)
			err := o.Validate(tc.finds)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// FuzzPeopleTracker feeds the people tracker whatever a detector might
// report (boxes anywhere, of any size, degenerate or not, any score, at any
// times, even backwards) and checks it neither panics nor loses its
// numbers: every track's state stays finite, and every crossing is for a
// line that exists and comes from a confirmed track.
func FuzzPeopleTracker(f *testing.F) {
	f.Add([]byte{10, 0, 100, 40, 100, 200, 10, 0, 110, 40, 100, 200, 10, 0, 120, 40, 100, 200})
	f.Add([]byte{0, 255, 255, 255, 255, 255, 1, 1, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := []geom{newGeom(across[0]), newGeom(Line{A: image.Pt(100, 0), B: image.Pt(100, 400)})}
		o := scenarioOptions()
		o.Overhead = len(data)%2 == 1
		tr := newPeopleTracker(o)
		var at time.Duration
		var dets []Detection
		flush := func() {
			for _, e := range tr.update(at, dets, g) {
				if e.line < 0 || e.line >= len(g) {
					t.Fatalf("crossing of line %d", e.line)
				}
			}
			dets = dets[:0]
			for _, p := range tr.tracks {
				for _, v := range p.kf.x {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("track %d state %v", p.id, p.kf.x)
					}
				}
				if len(p.held) > 0 && p.confirmed {
					t.Fatalf("confirmed track %d holds crossings", p.id)
				}
			}
		}
		for len(data) >= 6 {
			b := data[:6]
			data = data[6:]
			if b[0]%4 == 0 { // a new frame, up to 2.55 s later (or earlier)
				flush()
				at += time.Duration(int(b[1])-16) * 10 * ms
				continue
			}
			x, y := int(b[1])*3-100, int(b[2])*2-50
			w, h := int(b[3])-20, int(b[4])*2-20
			dets = append(dets, Detection{Box: image.Rect(x, y, x+w, y+h), Score: float32(b[5]) / 200})
		}
		flush()
	})
}

// scenarioOptions are the tracker options the scenarios here were written
// for (scores of 0.4 are low, a track coasts 1 s), whatever the defaults,
// which are tuned on real detections.
func scenarioOptions() TrackOptions {
	o := DefaultTrackOptions
	o.People.HighScore, o.People.LowScore = 0.5, 0.2
	o.People.MaxAge, o.People.Gate, o.People.IoUWeight = time.Second, 0.5, 0.5
	return o
}
