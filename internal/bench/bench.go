// Package bench times veil's stages and the whole redaction on real video
// at the sizes the product targets: decode only, each stage alone, then the
// full pipeline, reporting ms/frame, fps and peak memory.
package bench

import (
	"context"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/pipeline"
)

// Options says what to measure.
type Options struct {
	Input    string        // source video (vtest.avi)
	Sizes    []image.Point // frame sizes; the input is resized for others
	Frames   int           // frames per measurement
	Pipeline pipeline.Options
	Detector pipeline.NewDetector
	// Service and Frame, when set, time the face search's parts: the fine
	// pass, the coarse passes, a full search and the banded search of
	// keyframes (Detector is then detect.NewFrame(Service, Frame)).
	Service  *detect.Service
	Frame    detect.FrameOptions
	Redact   blur.Options
	TempDir  string
	Progress func(stage string)
	// PeopleCounter, when set, makes a counter with the person detector
	// (footfall.detector people, as veil run builds it), timed on the
	// frames as a 10 fps camera: wall and CPU time per frame.
	PeopleCounter func(lines []footfall.Line) (*footfall.Counter, error)
}

// Result is one measurement.
type Result struct {
	Size       string  `json:"size"`
	Stage      string  `json:"stage"`
	Frames     int     `json:"frames"`
	MSPerFrame float64 `json:"ms_per_frame"`
	FPS        float64 `json:"fps"`
	Note       string  `json:"note,omitempty"`
}

// Report is a whole bench run.
type Report struct {
	Every     int      `json:"every"`
	Workers   int      `json:"workers"`
	CPUs      int      `json:"cpus"`
	Results   []Result `json:"results"`
	PeakRSSMB float64  `json:"peak_rss_mb"`
}

// String renders the report as a table.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s  %-28s %7s %10s %9s\n", "size", "stage", "frames", "ms/frame", "fps")
	for _, x := range r.Results {
		fmt.Fprintf(&b, "%-9s  %-28s %7d %10.2f %9.1f  %s\n", x.Size, x.Stage, x.Frames, x.MSPerFrame, x.FPS, x.Note)
	}
	fmt.Fprintf(&b, "detect.every=%d workers=%d cpus=%d peak RSS %.0f MB\n", r.Every, r.Workers, r.CPUs, r.PeakRSSMB)
	return b.String()
}

// Run measures every stage at every size.
func Run(ctx context.Context, o Options) (Report, error) {
	rep := Report{Every: o.Pipeline.Every, Workers: o.Pipeline.Workers, CPUs: numCPU()}
	for _, size := range o.Sizes {
		clip, err := prepare(o, size)
		if err != nil {
			return rep, err
		}
		res, err := measure(ctx, o, clip, size)
		if clip != o.Input {
			os.Remove(clip)
		}
		if err != nil {
			return rep, err
		}
		rep.Results = append(rep.Results, res...)
	}
	rep.PeakRSSMB = peakRSSMB()
	return rep, nil
}

// prepare returns a clip of Frames frames at size: the input itself when it
// has that size and no more frames than asked, else the input resized and
// written as MPEG-4 part 2 (XVID, vtest.avi's own codec), so every size is
// decoded from a file of its resolution at a camera-like decode cost (MJPEG
// would cost ten times as much to decode).
func prepare(o Options, size image.Point) (string, error) {
	src, err := media.OpenFile(o.Input)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if info := src.Info(); info.Size == size && info.Frames > 0 && info.Frames <= o.Frames {
		return o.Input, nil
	}
	path := filepath.Join(o.TempDir, fmt.Sprintf("bench-%dx%d.avi", size.X, size.Y))
	w, err := gocv.VideoWriterFile(path, "XVID", src.Info().FPS, size.X, size.Y, true)
	if err != nil {
		return "", fmt.Errorf("bench clip: %w", err)
	}
	defer w.Close()
	m, r := gocv.NewMat(), gocv.NewMat()
	defer m.Close()
	defer r.Close()
	for i := 0; i < o.Frames; i++ {
		if err := src.Read(&m); err != nil {
			break
		}
		if m.Cols() != size.X || m.Rows() != size.Y {
			gocv.Resize(m, &r, size, 0, 0, gocv.InterpolationLinear)
			_ = w.Write(r)
		} else {
			_ = w.Write(m)
		}
	}
	return path, nil
}

type nullSink struct{ n int }

func (s *nullSink) Write(*blur.Redacted) error { s.n++; return nil }

func result(size image.Point, stage string, n int, d time.Duration, note string) Result {
	r := Result{Size: fmt.Sprintf("%dx%d", size.X, size.Y), Stage: stage, Frames: n, Note: note}
	if n > 0 && d > 0 {
		r.MSPerFrame = d.Seconds() * 1000 / float64(n)
		r.FPS = float64(n) / d.Seconds()
	}
	return r
}

func measure(ctx context.Context, o Options, clip string, size image.Point) ([]Result, error) {
	var out []Result
	step := func(s string) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf("%dx%d %s", size.X, size.Y, s))
		}
	}

	// 1. Decode only, into one reused Mat as a pipeline reader does.
	step("decode")
	d, err := timeDecode(clip)
	if err != nil {
		return nil, err
	}
	out = append(out, result(size, "decode", d.n, d.took, ""))

	// Keep the frames for the stage measurements (not timed).
	src, err := media.OpenFile(clip)
	if err != nil {
		return nil, err
	}
	var frames []gocv.Mat
	defer func() {
		for _, f := range frames {
			f.Close()
		}
	}()
	for {
		m := gocv.NewMat()
		if err := src.Read(&m); err != nil {
			m.Close()
			if err != io.EOF {
				src.Close()
				return nil, err
			}
			break
		}
		frames = append(frames, m)
	}
	src.Close()

	// 2. Detection: the parts of the search alone, then the search.
	boxes, res, err := measureDetect(ctx, o, frames, size, step)
	if err != nil {
		return nil, err
	}
	out = append(out, res...)

	// 3. Redaction of the detected faces.
	step("redact")
	red, err := blur.NewRedactor(o.Redact)
	if err != nil {
		return nil, err
	}
	defer red.Close()
	t0 := time.Now()
	var redactTime time.Duration
	for i, f := range frames {
		c := f.Clone()
		var plan blur.Plan
		if len(boxes) > 0 {
			plan = blur.FacesPlan(boxes[i%len(boxes)])
		}
		t1 := time.Now()
		r, err := red.Redact(c, plan)
		redactTime += time.Since(t1)
		if err != nil {
			return nil, err
		}
		r.Close()
	}
	out = append(out, result(size, "redact", len(frames), redactTime, ""))

	// 4. Footfall counting (motion blobs, tracking, one line across the
	// middle), which veil run does on every frame beside redaction.
	step("count")
	det, err := footfall.NewMotion(footfall.DefaultMotionOptions)
	if err != nil {
		return nil, err
	}
	mid := footfall.Line{Name: "mid", A: image.Pt(size.X/2, 0), B: image.Pt(size.X/2, size.Y)}
	counter, err := footfall.NewCounter(det, []footfall.Line{mid}, footfall.DefaultTrackOptions)
	if err != nil {
		det.Close()
		return nil, err
	}
	t0 = time.Now()
	for i, f := range frames {
		if _, err := counter.Frame(f, time.Duration(i)*40*time.Millisecond); err != nil {
			counter.Close()
			return nil, err
		}
	}
	out = append(out, result(size, "count (footfall)", len(frames), time.Since(t0), ""))
	counter.Close()
	if o.PeopleCounter != nil {
		step("count people")
		pc, err := o.PeopleCounter([]footfall.Line{mid})
		if err != nil {
			return nil, err
		}
		cpu0 := cpuTime()
		t0 = time.Now()
		for i, f := range frames {
			if _, err := pc.Frame(f, time.Duration(i)*100*time.Millisecond); err != nil {
				pc.Close()
				return nil, err
			}
		}
		wall, cpu := time.Since(t0), cpuTime()-cpu0
		pc.Close()
		out = append(out, result(size, "count (people, 10 fps camera)", len(frames), wall,
			fmt.Sprintf("%.1f CPU ms/frame", float64(cpu.Microseconds())/1000/float64(len(frames)))))
	}

	// 5. Encode (MPEG-4 part 2, as veil redact writes .mp4).
	step("encode")
	encPath := filepath.Join(o.TempDir, "bench-encode.mp4")
	w, err := gocv.VideoWriterFile(encPath, "mp4v", 25, size.X, size.Y, true)
	if err != nil {
		return nil, err
	}
	t0 = time.Now()
	for _, f := range frames {
		_ = w.Write(f)
	}
	w.Close()
	out = append(out, result(size, "encode mp4v", len(frames), time.Since(t0), ""))
	os.Remove(encPath)

	// 6. The whole redaction: decode, detect on keyframes, track, redact.
	for _, withEncode := range []bool{false, true} {
		name := "whole pipeline (no encode)"
		if withEncode {
			name = "whole pipeline + encode"
		}
		step(name)
		src, err := media.OpenFile(clip)
		if err != nil {
			return nil, err
		}
		var sink pipeline.Sink = &nullSink{}
		var fs *media.FileSink
		if withEncode {
			fs, err = media.CreateFile(filepath.Join(o.TempDir, "bench-out.mp4"), "mp4v", src.Info().FPS, size)
			if err != nil {
				src.Close()
				return nil, err
			}
			sink = fs
		}
		p := &pipeline.Pipeline{Source: src, Detector: o.Detector, Redactor: red, Sink: sink, Options: o.Pipeline}
		st, err := p.Run(ctx)
		src.Close()
		if fs != nil {
			fs.Abort()
		}
		if err != nil {
			return nil, err
		}
		out = append(out, result(size, name, st.Frames, st.Elapsed,
			fmt.Sprintf("every=%d, %d whole-redacted", o.Pipeline.Every, st.Whole)))
	}
	return out, nil
}

// measureDetect times the face search. With a Service: one fine pass and
// the coarse passes on one network each, a full search (fine and coarse,
// the fine pass split over the service's networks) of every frame, and the
// search as the pipeline runs it, on keyframes only: the fine pass over the
// regions that changed, the whole frame every Frame.FullEvery. It returns
// the faces found on each frame for the redaction stage.
func measureDetect(ctx context.Context, o Options, frames []gocv.Mat, size image.Point, step func(string)) ([][]image.Rectangle, []Result, error) {
	var out []Result
	n := min(len(frames), 60)
	if o.Service != nil {
		fine, coarse := o.Frame.Layout(size)
		for _, pass := range []struct {
			name  string
			sizes []image.Point
		}{{"detect fine pass", []image.Point{fine}}, {"detect coarse passes", coarse}} {
			step(pass.name)
			d, err := timeNets(o, frames[:n], pass.sizes)
			if err != nil {
				return nil, nil, err
			}
			note := ""
			for i, p := range pass.sizes {
				if i > 0 {
					note += " + "
				}
				note += fmt.Sprintf("%dx%d", p.X, p.Y)
			}
			out = append(out, result(size, pass.name, n, d, note+", 1 network"))
		}
		full := o.Frame
		full.Gate.Scale = 0
		boxes, d, _, err := timeFrame(ctx, o.Service, full, frames[:n], 1, 0)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, result(size, "detect full search", n, d, fmt.Sprintf("fine + coarse, %d networks", o.Service.Workers())))
		step("detect banded")
		every := max(1, o.Pipeline.Every)
		fps := 25.0
		_, d, share, err := timeFrame(ctx, o.Service, o.Frame, frames, every, time.Duration(float64(time.Second)/fps))
		if err != nil {
			return nil, nil, err
		}
		k := (len(frames) + every - 1) / every
		out = append(out, result(size, "detect banded (keyframes)", k, d,
			fmt.Sprintf("every %d frames, %.0f%% of the frame scanned, full every %s", every, 100*share, o.Frame.FullEvery)))
		return boxes, out, nil
	}
	if o.Detector == nil {
		return nil, nil, nil
	}
	step("detect")
	det, err := o.Detector()
	if err != nil {
		return nil, nil, err
	}
	defer det.Close()
	var boxes [][]image.Rectangle
	t0 := time.Now()
	for _, f := range frames[:n] {
		faces, err := det.Detect(f)
		if err != nil {
			return nil, nil, err
		}
		boxes = append(boxes, faceBoxes(faces))
	}
	return boxes, append(out, result(size, "detect (full search)", n, time.Since(t0), "")), nil
}

// timeNets runs one network per size on every frame, resized to it.
func timeNets(o Options, frames []gocv.Mat, sizes []image.Point) (time.Duration, error) {
	in := gocv.NewMat()
	defer in.Close()
	var took time.Duration
	for _, sz := range sizes {
		net, err := detect.NewBlazeNet(o.Service.Model(), sz.X, sz.Y, o.Service.Threshold())
		if err != nil {
			return 0, err
		}
		gocv.Resize(frames[0], &in, sz, 0, 0, gocv.InterpolationArea)
		if _, err := net.Run(in); err != nil { // allocation, not timed
			net.Close()
			return 0, err
		}
		for _, f := range frames {
			gocv.Resize(f, &in, sz, 0, 0, gocv.InterpolationArea)
			t0 := time.Now()
			if _, err := net.Run(in); err != nil {
				net.Close()
				return 0, err
			}
			took += time.Since(t0)
		}
		net.Close()
	}
	return took, nil
}

// timeFrame runs a Frame detector on every every-th frame, stamped dt
// apart per frame, and returns the faces of each, the time taken and the
// mean share of the frame the fine pass scanned.
func timeFrame(ctx context.Context, svc *detect.Service, fo detect.FrameOptions, frames []gocv.Mat, every int, dt time.Duration) ([][]image.Rectangle, time.Duration, float64, error) {
	det, err := detect.NewFrame(svc, fo)
	if err != nil {
		return nil, 0, 0, err
	}
	defer det.Close()
	var boxes [][]image.Rectangle
	var share float64
	k := 0
	t0 := time.Now()
	for i := 0; i < len(frames); i += every {
		faces, err := det.DetectAt(ctx, frames[i], time.Duration(i)*dt)
		if err != nil {
			return nil, 0, 0, err
		}
		boxes = append(boxes, faceBoxes(faces))
		st := det.LastStats()
		share += float64(st.FineArea) / float64(st.TotalArea)
		k++
	}
	return boxes, time.Since(t0), share / float64(max(1, k)), nil
}

func faceBoxes(fs []detect.Face) []image.Rectangle {
	out := make([]image.Rectangle, len(fs))
	for i, f := range fs {
		out[i] = f.Box
	}
	return out
}

// peakRSSMB is the process's peak resident set size.
func peakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

type decodeTiming struct {
	n    int
	took time.Duration
}

// timeDecode reads every frame of clip into one Mat.
func timeDecode(clip string) (decodeTiming, error) {
	src, err := media.OpenFile(clip)
	if err != nil {
		return decodeTiming{}, err
	}
	defer src.Close()
	m := gocv.NewMat()
	defer m.Close()
	var d decodeTiming
	t0 := time.Now()
	for {
		if err := src.Read(&m); err != nil {
			if err != io.EOF {
				return d, err
			}
			break
		}
		d.n++
	}
	d.took = time.Since(t0)
	return d, nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
